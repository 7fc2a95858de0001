import EvidenceIO
import Foundation
import Manifest
import OTLPProto
import SwiftProtobuf

/// The messages of an OTLP v1 export request, as redaction sees them: which fields carry text a
/// policy must reach, which are attribute lists, which hold numbers or ids that are copied as
/// they are. Field numbers and types are those of opentelemetry-proto (with `entity_refs`,
/// `event_name` and the `*_strindex` fields), the version the generated code in `OTLPProto` is.
enum RedactionMessage: UInt8 {
  case traceRequest, logsRequest, metricsRequest
  case resourceSpans, resourceLogs, resourceMetrics
  case scopeSpans, scopeLogs, scopeMetrics
  case resource, scope, entityRef
  case span, event, link, status, logRecord
  case metric, gauge, sum, histogram, exponentialHistogram, summary
  case numberPoint, histogramPoint, exponentialHistogramPoint, buckets, summaryPoint, valueAtQuantile, exemplar
  case anyValue, arrayValue, keyValueList

  init(_ signal: Signal) {
    switch signal {
    case .traces: self = .traceRequest
    case .logs: self = .logsRequest
    case .metrics: self = .metricsRequest
    }
  }

  /// Whether the message has a `dropped_attributes_count` that attributes the policy drops are
  /// added to.
  var countsDroppedAttributes: Bool {
    switch self {
    case .resource, .scope, .span, .event, .link, .logRecord: return true
    default: return false
    }
  }

  /// What redaction does with field `number` arriving with wire type `wire`. A known field with
  /// another wire type is what swift-protobuf keeps as an unknown field, so it is one here too.
  // swiftlint:disable:next cyclomatic_complexity function_body_length
  func field(_ number: UInt32, wire: UInt8) -> RedactionField {
    let kind: RedactionField
    switch self {
    case .traceRequest: kind = number == 1 ? .message(.resourceSpans) : .unknown
    case .logsRequest: kind = number == 1 ? .message(.resourceLogs) : .unknown
    case .metricsRequest: kind = number == 1 ? .message(.resourceMetrics) : .unknown
    case .resourceSpans: kind = Self.resourceLevel(number, .scopeSpans)
    case .resourceLogs: kind = Self.resourceLevel(number, .scopeLogs)
    case .resourceMetrics: kind = Self.resourceLevel(number, .scopeMetrics)
    case .scopeSpans: kind = Self.scopeLevel(number, .span)
    case .scopeLogs: kind = Self.scopeLevel(number, .logRecord)
    case .scopeMetrics: kind = Self.scopeLevel(number, .metric)
    case .resource:
      switch number {
      case 1: kind = .attribute
      case 2: kind = .droppedCount
      case 3: kind = .message(.entityRef)
      default: kind = .unknown
      }
    case .scope:
      switch number {
      case 1, 2: kind = .text  // name, version
      case 3: kind = .attribute
      case 4: kind = .droppedCount
      default: kind = .unknown
      }
    case .entityRef: kind = (1...4).contains(number) ? .text : .unknown  // schema_url, type, id/description keys
    case .span:
      switch number {
      case 1, 2, 4: kind = .keep(2)  // trace_id, span_id, parent_span_id
      case 3, 5: kind = .text  // trace_state, name
      case 6, 12, 14: kind = .keep(0)  // kind, dropped_events_count, dropped_links_count
      case 7, 8: kind = .keep(1)  // start and end times
      case 9: kind = .attribute
      case 10: kind = .droppedCount
      case 11: kind = .message(.event)
      case 13: kind = .message(.link)
      case 15: kind = .message(.status)
      case 16: kind = .keep(5)  // flags
      default: kind = .unknown
      }
    case .event:
      switch number {
      case 1: kind = .keep(1)
      case 2: kind = .text
      case 3: kind = .attribute
      case 4: kind = .droppedCount
      default: kind = .unknown
      }
    case .link:
      switch number {
      case 1, 2: kind = .keep(2)
      case 3: kind = .text  // trace_state
      case 4: kind = .attribute
      case 5: kind = .droppedCount
      case 6: kind = .keep(5)
      default: kind = .unknown
      }
    case .status:
      switch number {
      case 2: kind = .text
      case 3: kind = .keep(0)
      default: kind = .unknown
      }
    case .logRecord:
      switch number {
      case 1, 11: kind = .keep(1)  // time_unix_nano, observed_time_unix_nano
      case 2: kind = .keep(0)  // severity_number
      case 3, 12: kind = .text  // severity_text, event_name
      case 5: kind = .message(.anyValue)  // body
      case 6: kind = .attribute
      case 7: kind = .droppedCount
      case 8: kind = .keep(5)
      case 9, 10: kind = .keep(2)  // trace_id, span_id
      default: kind = .unknown
      }
    case .metric:
      switch number {
      case 1, 2, 3: kind = .text  // name, description, unit
      case 5: kind = .message(.gauge)
      case 7: kind = .message(.sum)
      case 9: kind = .message(.histogram)
      case 10: kind = .message(.exponentialHistogram)
      case 11: kind = .message(.summary)
      case 12: kind = .attribute  // metadata
      default: kind = .unknown
      }
    case .gauge: kind = number == 1 ? .message(.numberPoint) : .unknown
    case .sum:
      switch number {
      case 1: kind = .message(.numberPoint)
      case 2, 3: kind = .keep(0)
      default: kind = .unknown
      }
    case .histogram:
      switch number {
      case 1: kind = .message(.histogramPoint)
      case 2: kind = .keep(0)
      default: kind = .unknown
      }
    case .exponentialHistogram:
      switch number {
      case 1: kind = .message(.exponentialHistogramPoint)
      case 2: kind = .keep(0)
      default: kind = .unknown
      }
    case .summary: kind = number == 1 ? .message(.summaryPoint) : .unknown
    case .numberPoint:
      switch number {
      case 2, 3, 4, 6: kind = .keep(1)
      case 5: kind = .message(.exemplar)
      case 7: kind = .attribute
      case 8: kind = .keep(0)
      default: kind = .unknown
      }
    case .histogramPoint:
      switch number {
      case 2, 3, 4, 5, 11, 12: kind = .keep(1)
      case 6, 7: kind = .keepPacked(1)  // bucket_counts, explicit_bounds
      case 8: kind = .message(.exemplar)
      case 9: kind = .attribute
      case 10: kind = .keep(0)
      default: kind = .unknown
      }
    case .exponentialHistogramPoint:
      switch number {
      case 1: kind = .attribute
      case 2, 3, 4, 5, 7, 12, 13, 14: kind = .keep(1)
      case 6, 10: kind = .keep(0)  // scale, flags
      case 8, 9: kind = .message(.buckets)
      case 11: kind = .message(.exemplar)
      default: kind = .unknown
      }
    case .buckets:
      switch number {
      case 1: kind = .keep(0)
      case 2: kind = .keepPacked(0)
      default: kind = .unknown
      }
    case .summaryPoint:
      switch number {
      case 2, 3, 4, 5: kind = .keep(1)
      case 6: kind = .message(.valueAtQuantile)
      case 7: kind = .attribute
      case 8: kind = .keep(0)
      default: kind = .unknown
      }
    case .valueAtQuantile: kind = number == 1 || number == 2 ? .keep(1) : .unknown
    case .exemplar:
      switch number {
      case 2, 3, 6: kind = .keep(1)
      case 4, 5: kind = .keep(2)  // span_id, trace_id
      case 7: kind = .attribute  // filtered_attributes
      default: kind = .unknown
      }
    case .anyValue:
      switch number {
      case 1: kind = .text  // string_value
      case 2, 8: kind = .keep(0)  // bool_value, string_value_strindex
      case 3: kind = .intValue
      case 4: kind = .doubleValue
      case 5: kind = .message(.arrayValue)
      case 6: kind = .message(.keyValueList)
      case 7: kind = .bytesValue
      default: kind = .unknown
      }
    case .arrayValue: kind = number == 1 ? .message(.anyValue) : .unknown
    case .keyValueList: kind = number == 1 ? .attribute : .unknown
    }
    return kind.expects(wire) ? kind : .unknown
  }

  private static func resourceLevel(_ number: UInt32, _ scope: RedactionMessage) -> RedactionField {
    switch number {
    case 1: return .message(.resource)
    case 2: return .message(scope)
    case 3: return .text  // schema_url
    default: return .unknown
    }
  }

  private static func scopeLevel(_ number: UInt32, _ item: RedactionMessage) -> RedactionField {
    switch number {
    case 1: return .message(.scope)
    case 2: return .message(item)
    case 3: return .text  // schema_url
    default: return .unknown
    }
  }
}

/// What one field of a message is to redaction.
enum RedactionField: Equatable {
  /// Not in the schema (or a known number with another wire type): dropped and counted.
  case unknown
  /// A number, time, id or flag with this wire type: copied as it is.
  case keep(UInt8)
  /// A repeated number: packed (wire type 2) or one element of this wire type; copied.
  case keepPacked(UInt8)
  /// A string: masked.
  case text
  /// A sub-message: walked.
  case message(RedactionMessage)
  /// One `KeyValue` of an attribute list (or of a `kvlist`): allow, block, hash, masks.
  case attribute
  /// The holder's `dropped_attributes_count`.
  case droppedCount
  /// `AnyValue.int_value`, `double_value` and `bytes_value`: masked as their text.
  case intValue, doubleValue, bytesValue

  func expects(_ wire: UInt8) -> Bool {
    switch self {
    case .unknown: return true
    case .keep(let type): return wire == type
    case .keepPacked(let type): return wire == type || wire == 2
    case .text, .message, .attribute, .bytesValue: return wire == 2
    case .droppedCount, .intValue: return wire == 0
    case .doubleValue: return wire == 1
    }
  }
}

/// A request redaction could not walk: only bytes admission would have refused get here.
struct WireRedactionFault: Error {
  var offset: Int
  var message: String
}

/// One redaction pass over the protobuf wire form of a request.
///
/// Each message is read field by field. Fields no rule touches are not copied one by one: the
/// pass remembers where the untouched run started and copies the whole run when the next change
/// (or the end of the message) comes, and a message nothing changed in is not copied at all, so
/// an untouched request comes back as the very same bytes. A changed sub-message is written back
/// with its new length, which changes its parent, and so on up to the request.
struct WireRedactionPass {
  let policy: RedactionPolicy
  let input: UnsafeRawBufferPointer
  /// Unknown fields dropped so far, at every depth.
  private(set) var unknownFieldsDropped = 0
  /// Attributes (and `kvlist` entries) dropped so far.
  private(set) var attributesDropped = 0
  /// Strings, keys and values rewritten by a mask or a hash so far.
  private(set) var valuesRewritten = 0

  /// A bound on recursion. Admission already refuses requests nested deeper than swift-protobuf's
  /// 100 levels; this one sits above it so it never refuses an admitted request.
  static let maxDepth = 128

  init(policy: RedactionPolicy, input: UnsafeRawBufferPointer) {
    self.policy = policy
    self.input = input
  }

  // MARK: Reading

  private func byte(_ offset: Int) -> UInt8 { input.load(fromByteOffset: offset, as: UInt8.self) }

  private func varint(_ position: inout Int, _ end: Int) throws(WireRedactionFault) -> UInt64 {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    let start = position
    while true {
      guard position < end, shift < 64 else { throw WireRedactionFault(offset: start, message: "bad varint") }
      let next = byte(position)
      position += 1
      value |= UInt64(next & 0x7F) << shift
      if next < 0x80 { return value }
      shift += 7
    }
  }

  private func length(_ position: inout Int, _ end: Int) throws(WireRedactionFault) -> Range<Int> {
    let start = position
    let count = try varint(&position, end)
    guard count <= UInt64(end - position) else {
      throw WireRedactionFault(offset: start, message: "length \(count) runs past the end of its message")
    }
    let lower = position
    position += Int(count)
    return lower..<position
  }

  /// Moves past one field's value of wire type `wire` (groups included, as unknown fields may be).
  private func skip(_ position: inout Int, _ end: Int, wire: UInt8, field: UInt64, depth: Int)
    throws(WireRedactionFault)
  {
    switch wire {
    case 0: _ = try varint(&position, end)
    case 1, 5:
      let width = wire == 1 ? 8 : 4
      guard end - position >= width else { throw WireRedactionFault(offset: position, message: "truncated fixed") }
      position += width
    case 2: _ = try length(&position, end)
    case 3:
      guard depth < Self.maxDepth else { throw WireRedactionFault(offset: position, message: "groups nest too deep") }
      while true {
        let tagStart = position
        let tag = try varint(&position, end)
        let inner = UInt8(truncatingIfNeeded: tag & 7)
        if inner == 4 {
          guard tag >> 3 == field else { throw WireRedactionFault(offset: tagStart, message: "mismatched end group") }
          return
        }
        try skip(&position, end, wire: inner, field: tag >> 3, depth: depth + 1)
      }
    default:
      throw WireRedactionFault(offset: position, message: "wire type \(wire)")
    }
  }

  private func tag(_ position: inout Int, _ end: Int) throws(WireRedactionFault) -> (number: UInt32, wire: UInt8) {
    let start = position
    let tag = try varint(&position, end)
    let number = tag >> 3
    guard number != 0, number <= UInt64(UInt32.max >> 3), tag & 7 <= 5, tag & 7 != 4 else {
      throw WireRedactionFault(offset: start, message: "invalid field tag \(tag)")
    }
    return (UInt32(number), UInt8(tag & 7))
  }

  private func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(rebasing: input[range])
  }

  private func string(_ range: Range<Int>) -> String {
    String(decoding: slice(range), as: UTF8.self)
  }

  // MARK: Messages

  /// The message of kind `kind` in `range` with the policy applied, or `nil` when nothing in it
  /// changed.
  mutating func message(_ kind: RedactionMessage, _ range: Range<Int>, depth: Int) throws(WireRedactionFault)
    -> [UInt8]?
  {
    guard depth <= Self.maxDepth else {
      throw WireRedactionFault(offset: range.lowerBound, message: "messages nest deeper than \(Self.maxDepth)")
    }
    var output = RewrittenMessage(start: range.lowerBound)
    var keys = AttributeKeys()
    var dropped = 0
    var droppedCount: UInt32 = 0
    var position = range.lowerBound
    let end = range.upperBound
    while position < end {
      let fieldStart = position
      let (number, wire) = try tag(&position, end)
      switch kind.field(number, wire: wire) {
      case .unknown:
        try skip(&position, end, wire: wire, field: UInt64(number), depth: depth)
        unknownFieldsDropped += 1
        output.replace(fieldStart..<position, in: input, with: nil)
      case .keep, .keepPacked:
        try skip(&position, end, wire: wire, field: UInt64(number), depth: depth)
      case .droppedCount:
        let count = try varint(&position, end)
        droppedCount = UInt32(truncatingIfNeeded: count)
      case .text:
        let value = try length(&position, end)
        if let masked = maskedText(value) {
          output.replace(fieldStart..<position, in: input, with: Encoded.field(number, masked))
        }
      case .message(let inner):
        let value = try length(&position, end)
        if let rewritten = try message(inner, value, depth: depth + 1) {
          output.replace(fieldStart..<position, in: input, with: Encoded.field(number, rewritten))
        }
      case .attribute:
        let value = try length(&position, end)
        switch try attribute(value, depth: depth + 1, keys: &keys, holder: range.lowerBound..<fieldStart, number) {
        case .keep:
          break
        case .drop:
          dropped += 1
          output.replace(fieldStart..<position, in: input, with: nil)
        case .replace(let bytes):
          output.replace(fieldStart..<position, in: input, with: Encoded.field(number, bytes))
        }
      case .intValue:
        let value = try varint(&position, end)
        if let masked = maskedNumber(String(Int64(bitPattern: value))) {
          output.replace(fieldStart..<position, in: input, with: Encoded.field(1, masked))
        }
      case .doubleValue:
        guard end - position >= 8 else { throw WireRedactionFault(offset: position, message: "truncated double") }
        let number = Double(
          bitPattern: UInt64(littleEndian: input.loadUnaligned(fromByteOffset: position, as: UInt64.self)))
        position += 8
        // A card number sent as a number loses nothing to a double below 2^53.
        if number.rounded() == number, abs(number) < 1e19, let masked = maskedNumber(Self.integerText(number)) {
          output.replace(fieldStart..<position, in: input, with: Encoded.field(1, masked))
        }
      case .bytesValue:
        let value = try length(&position, end)
        if let masked = maskedBytes(value) {
          output.replace(fieldStart..<position, in: input, with: Encoded.field(number, masked))
        }
      }
    }
    attributesDropped += dropped
    if dropped > 0, kind.countsDroppedAttributes {
      // The last occurrence of a scalar field is its value, so one more after everything else
      // replaces whatever count came before without rewriting those bytes.
      let (sum, overflow) = droppedCount.addingReportingOverflow(UInt32(clamping: dropped))
      output.append(
        Encoded.tag(number: droppedCountField(kind), wire: 0) + Encoded.varint(UInt64(overflow ? .max : sum)),
        in: input, upTo: end)
    }
    return output.finish(in: input, end: end)
  }

  private func droppedCountField(_ kind: RedactionMessage) -> UInt32 {
    switch kind {
    case .resource: return 2
    case .scope, .event: return 4
    case .link: return 5
    case .logRecord: return 7
    default: return 10  // span
    }
  }

  private static func integerText(_ number: Double) -> String {
    if let exact = Int64(exactly: number) { return String(exact) }
    if let exact = UInt64(exactly: number) { return String(exact) }
    return ""
  }

  // MARK: Attributes

  enum AttributeOutcome {
    case keep
    case drop
    case replace([UInt8])
  }

  /// One `KeyValue`: dropped by `allow`/`block`, its value hashed under a `hash` key, otherwise
  /// its key and value masked; unknown fields inside it dropped. `holder` is the part of the
  /// holding message before this attribute, read again only if a masked key needs to be checked
  /// against the keys before it.
  private mutating func attribute(
    _ range: Range<Int>, depth: Int, keys: inout AttributeKeys, holder: Range<Int>, _ listField: UInt32
  ) throws(WireRedactionFault) -> AttributeOutcome {
    guard depth <= Self.maxDepth else {
      throw WireRedactionFault(offset: range.lowerBound, message: "messages nest deeper than \(Self.maxDepth)")
    }
    // The last `key` is the key (a later occurrence of a scalar field replaces an earlier one).
    var keyRange = range.lowerBound..<range.lowerBound
    var hasValue = false
    var position = range.lowerBound
    while position < range.upperBound {
      let (number, wire) = try tag(&position, range.upperBound)
      if number == 1, wire == 2 {
        keyRange = try length(&position, range.upperBound)
      } else {
        if number == 2, wire == 2 { hasValue = true }
        try skip(&position, range.upperBound, wire: wire, field: UInt64(number), depth: depth)
      }
    }
    let keyBytes = slice(keyRange)
    if policy.block.matches(utf8: keyBytes) || !(policy.allow?.matches(utf8: keyBytes) ?? true) { return .drop }
    let maskedKey = maskedText(keyRange)
    if let maskedKey {
      let outputKey = String(decoding: maskedKey, as: UTF8.self)
      if !keys.admit(outputKey, masked: true, earlier: { collectKeys(holder, listField) }) { return .drop }
    } else if keys.isTracking, !keys.admit(string(keyRange), masked: false, earlier: { [] }) {
      return .drop
    }
    if hasValue, policy.hashKeys.matches(utf8: keyBytes) {
      return .replace(try hashedAttribute(range, key: maskedKey ?? Array(keyBytes)))
    }
    var output = RewrittenMessage(start: range.lowerBound)
    position = range.lowerBound
    while position < range.upperBound {
      let fieldStart = position
      let (number, wire) = try tag(&position, range.upperBound)
      switch (number, wire) {
      case (1, 2):
        _ = try length(&position, range.upperBound)
        if let maskedKey { output.replace(fieldStart..<position, in: input, with: Encoded.field(1, maskedKey)) }
      case (2, 2):
        let value = try length(&position, range.upperBound)
        if let rewritten = try message(.anyValue, value, depth: depth + 1) {
          output.replace(fieldStart..<position, in: input, with: Encoded.field(2, rewritten))
        }
      case (3, 0):
        _ = try varint(&position, range.upperBound)  // key_strindex
      default:
        try skip(&position, range.upperBound, wire: wire, field: UInt64(number), depth: depth)
        unknownFieldsDropped += 1
        output.replace(fieldStart..<position, in: input, with: nil)
      }
    }
    return output.finish(in: input, end: range.upperBound).map { .replace($0) } ?? .keep
  }

  /// The keys of the attributes in `holder` (field `listField`), as written before the masks.
  private func collectKeys(_ holder: Range<Int>, _ listField: UInt32) -> Set<String> {
    var keys: Set<String> = []
    var position = holder.lowerBound
    do {
      while position < holder.upperBound {
        let (number, wire) = try tag(&position, holder.upperBound)
        guard number == listField, wire == 2 else {
          try skip(&position, holder.upperBound, wire: wire, field: UInt64(number), depth: 0)
          continue
        }
        let attribute = try length(&position, holder.upperBound)
        var inner = attribute.lowerBound
        var key: Range<Int>?
        while inner < attribute.upperBound {
          let (field, type) = try tag(&inner, attribute.upperBound)
          if field == 1, type == 2 {
            key = try length(&inner, attribute.upperBound)
          } else {
            try skip(&inner, attribute.upperBound, wire: type, field: UInt64(field), depth: 0)
          }
        }
        keys.insert(key.map(string) ?? "")
      }
    } catch {
      // The holder was read once already; what it held up to here is all there is.
    }
    return keys
  }

  /// The attribute with its value replaced by `hmac-sha256:<hex>` of the value's bytes.
  private mutating func hashedAttribute(_ range: Range<Int>, key: [UInt8]) throws(WireRedactionFault) -> [UInt8] {
    var attribute: Opentelemetry_Proto_Common_V1_KeyValue
    do {
      attribute = try Opentelemetry_Proto_Common_V1_KeyValue(serializedBytes: Array(slice(range)))
    } catch {
      throw WireRedactionFault(offset: range.lowerBound, message: "an attribute to hash does not decode: \(error)")
    }
    // The attribute is rebuilt from its hash, so whatever unknown fields it carried are dropped
    // here: counted like everywhere else, and kept out of the hashed bytes so that equal values
    // still give equal hashes.
    unknownFieldsDropped += unknownFieldCount(attribute.unknownFields)
    var value = attribute.value
    unknownFieldsDropped += strippingUnknownFields(&value)
    let bytes: [UInt8]
    switch value.value {
    case .stringValue(let text): bytes = Array(text.utf8)
    case .bytesValue(let data): bytes = [UInt8](data)
    case .intValue(let number): bytes = Array(String(number).utf8)
    case .doubleValue(let number): bytes = Array("\(number)".utf8)
    case .boolValue(let flag): bytes = Array((flag ? "true" : "false").utf8)
    case .stringValueStrindex(let index): bytes = Array(String(index).utf8)
    case .arrayValue, .kvlistValue, nil:
      do {
        bytes = try value.serializedBytes(options: OTLPSerialization.deterministic)
      } catch {
        throw WireRedactionFault(offset: range.lowerBound, message: "cannot encode a value to hash it: \(error)")
      }
    }
    guard let code = HMACSHA256.hex(of: bytes, key: policy.hashKey) else {
      throw WireRedactionFault(offset: range.lowerBound, message: "libcrypto failed to compute HMAC-SHA256")
    }
    valuesRewritten += 1
    let hashed = Encoded.field(1, Array(("hmac-sha256:" + code).utf8))
    return Encoded.field(1, key) + Encoded.field(2, hashed)
  }

  /// Removes the unknown fields of `value` and of everything nested in it; returns how many.
  private func strippingUnknownFields(_ value: inout Opentelemetry_Proto_Common_V1_AnyValue) -> Int {
    var count = unknownFieldCount(value.unknownFields)
    value.unknownFields = UnknownStorage()
    switch value.value {
    case .arrayValue(var array):
      count += unknownFieldCount(array.unknownFields)
      array.unknownFields = UnknownStorage()
      for index in array.values.indices { count += strippingUnknownFields(&array.values[index]) }
      value.value = .arrayValue(array)
    case .kvlistValue(var list):
      count += unknownFieldCount(list.unknownFields)
      list.unknownFields = UnknownStorage()
      for index in list.values.indices {
        count += unknownFieldCount(list.values[index].unknownFields)
        list.values[index].unknownFields = UnknownStorage()
        count += strippingUnknownFields(&list.values[index].value)
      }
      value.value = .kvlistValue(list)
    default:
      break
    }
    return count
  }

  /// The number of fields swift-protobuf kept as unknown in `storage`. Admission checked their
  /// framing already; should the walk still fail, what was there counts as one field.
  private func unknownFieldCount(_ storage: UnknownStorage) -> Int {
    guard !storage.data.isEmpty else { return 0 }
    return storage.data.withUnsafeBytes { bytes in
      let reader = WireRedactionPass(policy: policy, input: bytes)
      var position = 0
      var count = 0
      do {
        while position < bytes.count {
          let (number, wire) = try reader.tag(&position, bytes.count)
          try reader.skip(&position, bytes.count, wire: wire, field: UInt64(number), depth: 0)
          count += 1
        }
      } catch {
        return max(count, 1)
      }
      return count
    }
  }

  // MARK: Masks

  /// The string in `range` through every mask, as UTF-8, or `nil` when no mask matched.
  private mutating func maskedText(_ range: Range<Int>) -> [UInt8]? {
    let bytes = slice(range)
    guard policy.masks.contains(where: { $0.prefilter.admits(bytes) }) || bytes.contains(UInt8(ascii: "%")) else {
      return nil
    }
    guard let masked = policy.mask(string(range)) else { return nil }
    valuesRewritten += 1
    return Array(masked.utf8)
  }

  /// A number's decimal text through every mask: the string value to store instead, or `nil`.
  private mutating func maskedNumber(_ text: String) -> [UInt8]? {
    guard !text.isEmpty, let masked = policy.mask(text) else { return nil }
    valuesRewritten += 1
    return Array(masked.utf8)
  }

  /// A `bytes_value` read as UTF-8 text (invalid sequences as U+FFFD) through every mask: the
  /// masked text's bytes, or `nil` when no mask matched and the bytes are kept as they are.
  private mutating func maskedBytes(_ range: Range<Int>) -> [UInt8]? {
    maskedText(range)
  }
}

extension RedactionPolicy {
  /// `text` through every mask, or `nil` when none matched. Text that percent-decodes to
  /// something else is also masked in its decoded form; when that finds what the encoded form
  /// hid (`ivan%40example.com`), the value is kept decoded and masked, so the secret cannot
  /// survive in either form.
  func mask(_ text: String) -> String? {
    var current: String?
    for rule in masks {
      if let next = rule.apply(to: current ?? text) { current = next }
    }
    var decoded = current ?? text
    var rounds = 0
    // Each round undoes one layer (`%2540` is `%40` encoded again).
    while rounds < 3, decoded.utf8.contains(UInt8(ascii: "%")), let once = PercentDecoding.decode(decoded) {
      decoded = once
      rounds += 1
      var masked: String?
      for rule in masks {
        if let next = rule.apply(to: masked ?? decoded) { masked = next }
      }
      if let masked { return masked }
    }
    return current
  }
}

/// `%XX` decoding, the layer URLs and form bodies wrap text in.
enum PercentDecoding {
  /// `text` with every `%XX` replaced by its byte (invalid UTF-8 as U+FFFD), or `nil` when it has
  /// no `%XX`.
  static func decode(_ text: String) -> String? {
    let bytes = Array(text.utf8)
    var output: [UInt8] = []
    output.reserveCapacity(bytes.count)
    var index = 0
    var changed = false
    while index < bytes.count {
      if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count, let high = hex(bytes[index + 1]),
        let low = hex(bytes[index + 2])
      {
        output.append(high << 4 | low)
        index += 3
        changed = true
      } else {
        output.append(bytes[index])
        index += 1
      }
    }
    return changed ? String(decoding: output, as: UTF8.self) : nil
  }

  private static func hex(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
  }
}

/// The keys one attribute list keeps, tracked only once a masked key appears: a masked key could
/// equal another key of the list, and OTLP wants the keys of a list unique.
struct AttributeKeys {
  private var seen: Set<String>?

  /// Whether a masked key appeared, so every later key must be checked.
  var isTracking: Bool { seen != nil }

  /// Whether an attribute with `key` may be kept. `earlier` gives the keys before it, read only
  /// when the first masked key arrives; until then keys are not tracked at all.
  mutating func admit(_ key: String, masked: Bool, earlier: () -> Set<String>) -> Bool {
    if seen == nil {
      guard masked else { return true }
      seen = earlier()
    }
    return seen?.insert(key).inserted ?? true
  }
}

/// A message being rewritten: untouched runs of its bytes are copied only when a change follows
/// them, and nothing is allocated until the first change.
struct RewrittenMessage {
  private var bytes: [UInt8]?
  /// Where the run of input bytes not yet copied starts.
  private var pending: Int

  init(start: Int) { pending = start }

  /// Replaces the input bytes in `range` (which starts at or after the pending run) by
  /// `replacement`, or drops them when it is `nil`.
  mutating func replace(_ range: Range<Int>, in input: UnsafeRawBufferPointer, with replacement: [UInt8]?) {
    if bytes == nil { bytes = [] }
    bytes?.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[pending..<range.lowerBound]))
    if let replacement { bytes?.append(contentsOf: replacement) }
    pending = range.upperBound
  }

  /// Adds `extra` after the message's last field (which ends at `end`).
  mutating func append(_ extra: [UInt8], in input: UnsafeRawBufferPointer, upTo end: Int) {
    replace(end..<end, in: input, with: extra)
  }

  /// The rewritten message, or `nil` when nothing changed.
  mutating func finish(in input: UnsafeRawBufferPointer, end: Int) -> [UInt8]? {
    guard bytes != nil else { return nil }
    bytes?.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[pending..<end]))
    pending = end
    return bytes
  }
}

/// Protobuf encoding of the fields redaction writes.
enum Encoded {
  static func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var out: [UInt8] = []
    while value >= 0x80 {
      out.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    out.append(UInt8(value))
    return out
  }

  static func tag(number: UInt32, wire: UInt8) -> [UInt8] {
    varint(UInt64(number) << 3 | UInt64(wire))
  }

  /// A length-delimited field.
  static func field(_ number: UInt32, _ bytes: [UInt8]) -> [UInt8] {
    var out = tag(number: number, wire: 2)
    out += varint(UInt64(bytes.count))
    out += bytes
    return out
  }
}
