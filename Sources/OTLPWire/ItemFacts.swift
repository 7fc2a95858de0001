/// Where one span sits in its request, and the few values the tail sampler decides on.
///
/// Ranges are offsets into the request. Field ranges (`span`, `resourceSpans`, `resource`, …)
/// cover the whole field, tag and length prefix included, so the bytes can be copied into a new
/// request as they are; value ranges (`traceID`, `serviceName`) cover the value only. Singular
/// fields that occur more than once read as swift-protobuf reads them: the last occurrence wins,
/// and `status` occurrences merge.
public struct SpanFacts: Sendable, Equatable {
  /// The `trace_id` bytes as sent (the last occurrence); OTLP does not enforce 16 bytes on the
  /// wire, so this may be empty or any length. An absent field is an empty range at `span`'s end.
  public var traceID: Range<Int>
  /// The trace id's first 8 bytes, big-endian, when ``traceID`` is exactly 16 bytes; else 0.
  public var traceIDHigh: UInt64
  /// The trace id's last 8 bytes, big-endian, when ``traceID`` is exactly 16 bytes; else 0.
  public var traceIDLow: UInt64
  /// `status.code` (Status field 3, the last one over all `status` occurrences); 0 when unset.
  public var statusCode: Int32
  /// `start_time_unix_nano`.
  public var startTime: UInt64
  /// `end_time_unix_nano`.
  public var endTime: UInt64
  /// The `spans` field holding this span.
  public var span: Range<Int>
  /// The `scope_spans` field around the span.
  public var scopeSpans: Range<Int>
  /// The `resource_spans` field around the scope.
  public var resourceSpans: Range<Int>
  /// The resource's last `resource` field (1), if any.
  public var resource: Range<Int>?
  /// The resource's last `schema_url` field (3), if any.
  public var resourceSchemaURL: Range<Int>?
  /// The scope's last `scope` field (1), if any.
  public var scope: Range<Int>?
  /// The scope's last `schema_url` field (3), if any.
  public var scopeSchemaURL: Range<Int>?
  /// Which `resource_spans` of the request, counting from 0.
  public var resourceIndex: Int
  /// Which `scope_spans` of its `resource_spans`, counting from 0.
  public var scopeIndex: Int
  /// The value bytes of the resource's `service.name` attribute, when it is a `string_value`
  /// (the last such attribute).
  public var serviceName: Range<Int>?
}

/// Where one log record sits in its request, with its severity and trace id.
///
/// Ranges follow ``SpanFacts``' conventions.
public struct LogRecordFacts: Sendable, Equatable {
  /// `severity_number` (field 2); 0 when unset.
  public var severityNumber: Int32
  /// The value bytes of `severity_text` (field 3, the last occurrence), if any: the sampler reads
  /// it when the number is unset.
  public var severityText: Range<Int>?
  /// The `trace_id` bytes as sent (the last occurrence); empty at `record`'s end when absent.
  public var traceID: Range<Int>
  /// `time_unix_nano`.
  public var time: UInt64
  /// `observed_time_unix_nano`.
  public var observedTime: UInt64
  /// The `log_records` field holding this record.
  public var record: Range<Int>
  /// The `scope_logs` field around the record.
  public var scopeLogs: Range<Int>
  /// The `resource_logs` field around the scope.
  public var resourceLogs: Range<Int>
  /// The resource's last `resource` field (1), if any.
  public var resource: Range<Int>?
  /// The resource's last `schema_url` field (3), if any.
  public var resourceSchemaURL: Range<Int>?
  /// The scope's last `scope` field (1), if any.
  public var scope: Range<Int>?
  /// The scope's last `schema_url` field (3), if any.
  public var scopeSchemaURL: Range<Int>?
  /// Which `resource_logs` of the request, counting from 0.
  public var resourceIndex: Int
  /// Which `scope_logs` of its `resource_logs`, counting from 0.
  public var scopeIndex: Int
}

/// One field as the facts walks see it: `field` is the whole field, `value` the payload (the
/// bytes after the length prefix for length-delimited fields).
struct WireField {
  var number: UInt32
  var wire: UInt8
  var field: Range<Int>
  var value: Range<Int>
}

extension WireInput {
  /// Reads the next field of the message ending at `end`; well-formedness as in the full check
  /// (minus strings and sub-messages, which the caller reads if it wants them).
  @inline(__always)
  func nextField(_ position: inout Int, _ end: Int, depth: Int) throws(Fault) -> WireField {
    let start = position
    let tag = try readTag(&position, end)
    let valueStart = position
    if tag.wire == 2 {
      let value = try readLength(&position, end, strict: false, bounded: true)
      return WireField(number: tag.field, wire: 2, field: start..<position, value: value)
    }
    try skipValue(&position, end, field: UInt64(tag.field), wire: tag.wire, depth: depth, groupDepth: 0, strict: false)
    return WireField(number: tag.field, wire: tag.wire, field: start..<position, value: valueStart..<position)
  }

  /// Calls `body` for each field of the message in `range`.
  @inline(__always)
  func forEachField(_ range: Range<Int>, depth: Int, _ body: (WireField) throws(Fault) -> Void) throws(Fault) {
    var position = range.lowerBound
    while position < range.upperBound {
      try body(try nextField(&position, range.upperBound, depth: depth))
    }
  }

  func varintValue(_ field: WireField) -> UInt64 {
    var position = field.value.lowerBound
    return (try? readVarint(&position, field.value.upperBound, strict: false)) ?? 0
  }

  func bigEndian64(_ offset: Int) -> UInt64 {
    UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  /// The value of the last `KeyValue` named `key` in the `Resource` messages' `attributes`,
  /// when that value is a `string_value` (AnyValue occurrences merge; the last oneof field wins).
  func stringAttribute(_ key: UnsafeRawBufferPointer, inResource resource: Range<Int>, depth: Int)
    throws(Fault) -> Range<Int>?
  {
    var found: Range<Int>?
    try forEachField(resource, depth: depth) { (attribute) throws(Fault) in
      guard attribute.number == 1, attribute.wire == 2 else { return }
      var name: Range<Int> = attribute.value.lowerBound..<attribute.value.lowerBound
      var value: Range<Int>?
      try forEachField(attribute.value, depth: depth + 1) { (field) throws(Fault) in
        if field.number == 1 && field.wire == 2 { name = field.value }
        guard field.number == 2, field.wire == 2 else { return }
        try forEachField(field.value, depth: depth + 2) { (member) throws(Fault) in
          switch (member.number, member.wire) {
          case (1, 2): value = member.value
          case (2, 0), (3, 0), (4, 1), (5, 2), (6, 2), (7, 2), (8, 0): value = nil
          default: break
          }
        }
      }
      if let value, equalBytes(name, key) { found = value }
    }
    return found
  }
}

extension OTLPWireReader {
  /// Calls `body` once per span, in wire order, with where it sits and what the sampler needs.
  ///
  /// Reads only the path to the spans (and a span's `trace_id`, times and `status`), so call it
  /// on a request ``check(_:signal:tenantAttribute:)`` accepted; on other input it throws or
  /// reports what it can, but never reads outside `request`.
  public static func forEachSpan(_ request: UnsafeRawBufferPointer, _ body: (SpanFacts) -> Void)
    throws(OTLPWireError)
  {
    guard let base = request.baseAddress, request.count > 0 else { return }
    let input = WireInput(base: base, count: request.count)
    do throws(Fault) {
      try input.walkItems(container: .traceRequest) { (context, item) throws(Fault) in
        var facts = SpanFacts(
          traceID: item.field.upperBound..<item.field.upperBound, traceIDHigh: 0, traceIDLow: 0, statusCode: 0,
          startTime: 0, endTime: 0, span: item.field, scopeSpans: context.scopeField,
          resourceSpans: context.resourceField, resource: context.resource,
          resourceSchemaURL: context.resourceSchemaURL, scope: context.scope,
          scopeSchemaURL: context.scopeSchemaURL, resourceIndex: context.resourceIndex,
          scopeIndex: context.scopeIndex, serviceName: context.serviceName)
        try input.forEachField(item.value, depth: 5) { (field) throws(Fault) in
          switch (field.number, field.wire) {
          case (1, 2): facts.traceID = field.value
          case (7, 1): facts.startTime = input.fixed64(field.value.lowerBound)
          case (8, 1): facts.endTime = input.fixed64(field.value.lowerBound)
          case (15, 2):
            try input.forEachField(field.value, depth: 6) { (status) throws(Fault) in
              if status.number == 3 && status.wire == 0 {
                facts.statusCode = Int32(truncatingIfNeeded: input.varintValue(status))
              }
            }
          default: break
          }
        }
        if facts.traceID.count == 16 {
          facts.traceIDHigh = input.bigEndian64(facts.traceID.lowerBound)
          facts.traceIDLow = input.bigEndian64(facts.traceID.lowerBound + 8)
        }
        body(facts)
      }
    } catch {
      throw error.publicError
    }
  }

  /// Calls `body` once per log record, in wire order; the same contract as
  /// ``forEachSpan(_:_:)``.
  public static func forEachLogRecord(_ request: UnsafeRawBufferPointer, _ body: (LogRecordFacts) -> Void)
    throws(OTLPWireError)
  {
    guard let base = request.baseAddress, request.count > 0 else { return }
    let input = WireInput(base: base, count: request.count)
    do throws(Fault) {
      try input.walkItems(container: .logsRequest) { (context, item) throws(Fault) in
        var facts = LogRecordFacts(
          severityNumber: 0, severityText: nil, traceID: item.field.upperBound..<item.field.upperBound, time: 0,
          observedTime: 0, record: item.field, scopeLogs: context.scopeField, resourceLogs: context.resourceField,
          resource: context.resource, resourceSchemaURL: context.resourceSchemaURL, scope: context.scope,
          scopeSchemaURL: context.scopeSchemaURL, resourceIndex: context.resourceIndex,
          scopeIndex: context.scopeIndex)
        try input.forEachField(item.value, depth: 5) { (field) throws(Fault) in
          switch (field.number, field.wire) {
          case (1, 1): facts.time = input.fixed64(field.value.lowerBound)
          case (2, 0): facts.severityNumber = Int32(truncatingIfNeeded: input.varintValue(field))
          case (3, 2): facts.severityText = field.value
          case (9, 2): facts.traceID = field.value
          case (11, 1): facts.observedTime = input.fixed64(field.value.lowerBound)
          default: break
          }
        }
        body(facts)
      }
    } catch {
      throw error.publicError
    }
  }
}

/// The resource and scope an item belongs to.
struct ItemContext {
  var resourceField: Range<Int> = 0..<0
  var resourceIndex = -1
  var resource: Range<Int>?
  var resourceSchemaURL: Range<Int>?
  var serviceName: Range<Int>?
  var scopeField: Range<Int> = 0..<0
  var scopeIndex = -1
  var scope: Range<Int>?
  var scopeSchemaURL: Range<Int>?
}

extension WireInput {
  /// Walks request → resource_* (1) → scope_* (2) → items (2). Each level is read twice: first
  /// for its own fields, which may follow the items (pdata writes fields in descending order),
  /// then for the items.
  func walkItems(container: MessageKind, _ body: (ItemContext, WireField) throws(Fault) -> Void) throws(Fault) {
    var context = ItemContext()
    let serviceNameKey: StaticString = "service.name"
    let wantsServiceName = container == .traceRequest
    try forEachField(0..<count, depth: 1) { (resourceField) throws(Fault) in
      guard resourceField.number == 1, resourceField.wire == 2 else { return }
      context.resourceField = resourceField.field
      context.resourceIndex += 1
      context.resource = nil
      context.resourceSchemaURL = nil
      context.serviceName = nil
      context.scopeIndex = -1
      try forEachField(resourceField.value, depth: 2) { (field) throws(Fault) in
        guard field.wire == 2 else { return }
        if field.number == 1 {
          context.resource = field.field
          if wantsServiceName {
            let key = UnsafeRawBufferPointer(
              start: serviceNameKey.utf8Start, count: serviceNameKey.utf8CodeUnitCount)
            if let name = try stringAttribute(key, inResource: field.value, depth: 3) {
              context.serviceName = name
            }
          }
        } else if field.number == 3 {
          context.resourceSchemaURL = field.field
        }
      }
      try forEachField(resourceField.value, depth: 2) { (scopeField) throws(Fault) in
        guard scopeField.number == 2, scopeField.wire == 2 else { return }
        context.scopeField = scopeField.field
        context.scopeIndex += 1
        context.scope = nil
        context.scopeSchemaURL = nil
        try forEachField(scopeField.value, depth: 3) { (field) throws(Fault) in
          guard field.wire == 2 else { return }
          if field.number == 1 {
            context.scope = field.field
          } else if field.number == 3 {
            context.scopeSchemaURL = field.field
          }
        }
        try forEachField(scopeField.value, depth: 3) { (item) throws(Fault) in
          guard item.number == 2, item.wire == 2 else { return }
          try body(context, item)
        }
      }
    }
  }
}
