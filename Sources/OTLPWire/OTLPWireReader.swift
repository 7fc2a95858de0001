/// Distinct `string_value`s of one resource attribute, across all resources of a request.
///
/// Holds byte ranges into the request, not copies, so collecting them costs no allocation; at
/// most ``capacity`` are kept, and ``hasMore`` says whether further distinct values were seen.
public struct OTLPTenantValues: Sendable, Equatable {
  /// How many distinct values are kept at most.
  public static let capacity = 4

  /// Distinct values kept (at most ``capacity``).
  public private(set) var count = 0
  /// Whether the request holds more distinct values than ``capacity``.
  public private(set) var hasMore = false
  private var ranges: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)

  public init() {}

  public static func == (lhs: OTLPTenantValues, rhs: OTLPTenantValues) -> Bool {
    guard lhs.count == rhs.count, lhs.hasMore == rhs.hasMore else { return false }
    return (0..<lhs.count).allSatisfy { lhs[$0] == rhs[$0] }
  }

  /// The request bytes of the `index`-th distinct value, in first-seen order.
  public subscript(index: Int) -> Range<Int> {
    precondition(index >= 0 && index < count, "tenant value index out of range")
    switch index {
    case 0: return ranges.0
    case 1: return ranges.1
    case 2: return ranges.2
    default: return ranges.3
    }
  }

  /// The values as strings, read from the request the ranges point into.
  public func strings(in request: UnsafeRawBufferPointer) -> [String] {
    (0..<count).map { index in
      let range = self[index]
      guard range.upperBound <= request.count else { return "" }
      return String(decoding: UnsafeRawBufferPointer(rebasing: request[range]), as: UTF8.self)
    }
  }

  mutating func insert(_ range: Range<Int>, in input: WireInput) {
    for index in 0..<count where input.equalBytes(self[index], range) { return }
    guard count < Self.capacity else {
      hasMore = true
      return
    }
    switch count {
    case 0: ranges.0 = range
    case 1: ranges.1 = range
    case 2: ranges.2 = range
    default: ranges.3 = range
    }
    count += 1
  }
}

/// What a successful ``OTLPWireReader/check(_:signal:tenantAttribute:)`` learned about a request.
public struct OTLPRequestFacts: Sendable, Equatable {
  /// Item count and time range, as BUNDLE-FORMAT.md §6.3 defines them.
  public var times: OTLPTimeSummary
  /// The distinct `string_value`s of the resource attribute named by `tenantAttribute`; empty
  /// when no attribute was named.
  public var tenantValues: OTLPTenantValues

  public init(times: OTLPTimeSummary = OTLPTimeSummary(), tenantValues: OTLPTenantValues = OTLPTenantValues()) {
    self.times = times
    self.tenantValues = tenantValues
  }
}

/// A single-pass reader of OTLP v1 export requests straight from the protobuf wire format.
///
/// Two checks share its low-level reader:
/// - ``scanTimes(_:signal:)`` is BUNDLE-FORMAT.md §6.3's time walk, the verifier's rule: only
///   the path to the timestamps must be well-formed, nothing else is looked into.
/// - ``check(_:signal:tenantAttribute:)`` accepts exactly the requests that swift-protobuf 1.39
///   decodes as `Export…ServiceRequest` (default options) *and* the time walk accepts: every
///   field of every message is validated, strings must be UTF-8, messages and groups nest at most
///   100 deep. Unknown fields, known fields with another wire type, fields in any order and
///   repeated singular fields are accepted, as swift-protobuf accepts them.
///
/// Replay's reads share it too, each with the accept rule replay has always had:
/// ``forEachTimestamp(in:signal:_:)`` (and ``shiftTimestamps(in:signal:by:)``,
/// ``newestTimestamp(in:signal:)``) find the timestamps of an archived request for a time
/// shift, and `partialSuccessRejected(inResponse:)` reads an endpoint's partial-success count.
///
/// None allocates per field; each reads an `UnsafeRawBufferPointer` once, front to back.
public enum OTLPWireReader {
  /// Validates one serialized `Export…ServiceRequest` of `signal` and returns its §6.3 times and
  /// the tenant attribute's values.
  ///
  /// - Parameter tenantAttribute: a resource attribute key whose distinct string values to
  ///   collect (for example `tenant.id`), or `nil`.
  ///   - refusingUnknownFields: also refuse any field the OTLP schema does not have, and any known
  ///     field sent with another wire type, anywhere in the request (swift-protobuf keeps both as
  ///     unknown fields; a caller that must tell the three request types apart by their fields,
  ///     as import does, counts a request with such fields as not of that type).
  public static func check(
    _ request: UnsafeRawBufferPointer, signal: WireSignal, tenantAttribute: String? = nil,
    refusingUnknownFields: Bool = false
  ) throws(OTLPWireError) -> OTLPRequestFacts {
    guard let base = request.baseAddress, request.count > 0 else { return OTLPRequestFacts() }
    let input = WireInput(base: base, count: request.count)
    guard var tenantKey = tenantAttribute else {
      return try runCheck(input, signal: signal, tenantKey: nil, refusingUnknownFields: refusingUnknownFields)
    }
    var result: Result<OTLPRequestFacts, OTLPWireError> = .success(OTLPRequestFacts())
    tenantKey.withUTF8 { key in
      do throws(OTLPWireError) {
        result = .success(try runCheck(input, signal: signal, tenantKey: UnsafeRawBufferPointer(key)))
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
  }

  /// Validates one serialized request held in an array; see ``check(_:signal:tenantAttribute:)``.
  public static func check(_ request: [UInt8], signal: WireSignal, tenantAttribute: String? = nil)
    throws(OTLPWireError) -> OTLPRequestFacts
  {
    var result: Result<OTLPRequestFacts, OTLPWireError> = .success(OTLPRequestFacts())
    request.withUnsafeBytes { raw in
      do throws(OTLPWireError) {
        result = .success(try check(raw, signal: signal, tenantAttribute: tenantAttribute))
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
  }

  private static func runCheck(
    _ input: WireInput, signal: WireSignal, tenantKey: UnsafeRawBufferPointer?, refusingUnknownFields: Bool = false
  ) throws(OTLPWireError) -> OTLPRequestFacts {
    var result: Result<OTLPRequestFacts, OTLPWireError> = .success(OTLPRequestFacts())
    let actionTable = refusingUnknownFields ? MessageKind.refusingActionTable : MessageKind.actionTable
    actionTable.withUnsafeBufferPointer { table in
      guard let actions = table.baseAddress else { return }
      do throws(OTLPWireError) {
        result = .success(
          try runCheck(
            input, signal: signal, tenantKey: tenantKey, actions: actions, refusingUnknownFields: refusingUnknownFields)
        )
      } catch {
        result = .failure(error)
      }
    }
    return try result.get()
  }

  private static func runCheck(
    _ input: WireInput, signal: WireSignal, tenantKey: UnsafeRawBufferPointer?, actions: UnsafePointer<UInt16>,
    refusingUnknownFields: Bool
  ) throws(OTLPWireError) -> OTLPRequestFacts {
    var checker = SchemaChecker(input: input, tenantKey: tenantKey, actions: actions)
    checker.refusingUnknownFields = refusingUnknownFields
    do throws(Fault) {
      try checker.walk(MessageKind(request: signal), 0..<input.count, depth: 1)
    } catch {
      throw error.publicError
    }
    return OTLPRequestFacts(times: checker.summary, tenantValues: checker.tenants)
  }
}

extension WireInput {
  func equalBytes(_ lhs: Range<Int>, _ rhs: Range<Int>) -> Bool {
    guard lhs.count == rhs.count else { return false }
    return memcmpBytes(base + lhs.lowerBound, base + rhs.lowerBound, lhs.count)
  }

  func equalBytes(_ range: Range<Int>, _ other: UnsafeRawBufferPointer) -> Bool {
    guard range.count == other.count else { return false }
    guard let otherBase = other.baseAddress else { return true }
    return memcmpBytes(base + range.lowerBound, otherBase, range.count)
  }
}

@inline(__always)
private func memcmpBytes(_ lhs: UnsafeRawPointer, _ rhs: UnsafeRawPointer, _ count: Int) -> Bool {
  for index in 0..<count
  where lhs.load(fromByteOffset: index, as: UInt8.self) != rhs.load(fromByteOffset: index, as: UInt8.self) {
    return false
  }
  return true
}

/// The full check's walk: one recursive call per sub-message (at most 100 deep).
struct SchemaChecker {
  let input: WireInput
  /// `MessageKind.actionTable`'s storage, for the duration of one check.
  let actions: UnsafePointer<UInt16>
  let tenantKey: UnsafeRawBufferPointer?
  /// Whether a field that swift-protobuf would keep as unknown is a refusal.
  var refusingUnknownFields = false
  var summary = OTLPTimeSummary()
  var tenants = OTLPTenantValues()
  /// The current item's two §6.3 times (items never nest, so one pair is enough).
  private var times: (UInt64, UInt64) = (0, 0)
  /// The current resource attribute: its last `key`, and whether its value ends up a string.
  private var attributeKey: Range<Int> = 0..<0
  private var attributeString: Range<Int>? = nil

  init(input: WireInput, tenantKey: UnsafeRawBufferPointer?, actions: UnsafePointer<UInt16>) {
    self.input = input
    self.actions = actions
    self.tenantKey = tenantKey
  }

  mutating func walk(_ kind: MessageKind, _ range: Range<Int>, depth: Int) throws(Fault) {
    guard depth <= WireLimits.messageDepth else {
      var fault = Fault(range.lowerBound, .depthLimit)
      fault.kind = kind
      throw fault
    }
    switch kind {
    case .keyValue: return try walkKeyValue(range, depth: depth)
    case .anyValue: return try walkAnyValue(range, depth: depth)
    case .span, .logRecord, .numberDataPoint, .histogramDataPoint, .exponentialHistogramDataPoint,
      .summaryDataPoint:
      times = (0, 0)
    case .tenantKeyValue:
      attributeKey = 0..<0
      attributeString = nil
    default:
      break
    }
    let strict = kind.isTimeWalked
    let end = range.upperBound
    var position = range.lowerBound
    let row = actions + Int(kind.rawValue) &* 128
    while position < end {
      let tag = input.byte(position)
      guard tag < 0x80 else {
        try step(kind, &position, end, depth: depth, strict: strict)
        continue
      }
      let entry = row[Int(tag)]
      let fieldStart = position
      position += 1
      do throws(Fault) {
        switch FieldAction(rawValue: UInt8(truncatingIfNeeded: entry)) ?? .general {
        case .general:
          position = fieldStart
          try step(kind, &position, end, depth: depth, strict: strict)
        case .varint:
          _ = try input.readVarint(&position, end, strict: strict)
        case .fixed64:
          try input.skipFixed(&position, end, width: 8)
        case .fixed32:
          try input.skipFixed(&position, end, width: 4)
        case .skipLengthDelimited:
          _ = try input.readLength(&position, end, strict: strict, bounded: false)
        case .bytes:
          _ = try input.readLength(&position, end, strict: strict, bounded: true)
        case .string:
          let start = position
          let value = try input.readLength(&position, end, strict: strict, bounded: true)
          guard input.isValidUTF8(value) else { throw Fault(start, .invalidUTF8) }
        case .message:
          let body = try input.readLength(&position, end, strict: strict, bounded: true)
          // The table holds only raw values of real kinds (built from MessageKind itself).
          try walk(unsafeBitCast(UInt8(truncatingIfNeeded: entry >> 8), to: MessageKind.self), body, depth: depth + 1)
        case .time0, .time1:
          guard end - position >= 8 else { throw Fault(position, .truncatedFixed) }
          if entry & 0xFF == FieldAction.time0.rawValue {
            times.0 = input.fixed64(position)
          } else {
            times.1 = input.fixed64(position)
          }
          position += 8
        }
      } catch {
        throw error.naming(kind, UInt32(tag >> 3))
      }
    }
    switch kind {
    case .span: summary.add(first: times.0, last: times.1)
    case .logRecord:
      let time = times.0 != 0 ? times.0 : times.1
      summary.add(first: time, last: time)
    case .numberDataPoint, .histogramDataPoint, .exponentialHistogramDataPoint, .summaryDataPoint:
      summary.add(first: times.0, last: times.0)
    case .tenantKeyValue:
      if let key = tenantKey, let value = attributeString, input.equalBytes(attributeKey, key) {
        tenants.insert(value, in: input)
      }
    default:
      break
    }
  }

  /// One field of a `kind` message, by the rule table; errors get the message and field named.
  @inline(__always)
  private mutating func step(_ kind: MessageKind, _ position: inout Int, _ end: Int, depth: Int, strict: Bool)
    throws(Fault)
  {
    var field: UInt32 = 0
    do throws(Fault) {
      let tag = try input.readTag(&position, end)
      field = tag.field
      try readField(kind, field: tag.field, wire: tag.wire, &position, end, depth: depth, strict: strict)
    } catch {
      throw error.naming(kind, field)
    }
  }

  /// A string field's value, checked; errors name `kind.field`.
  @inline(__always)
  private func readString(_ kind: MessageKind, _ field: UInt32, _ position: inout Int, _ end: Int) throws(Fault)
    -> Range<Int>
  {
    let start = position
    do throws(Fault) {
      let value = try input.readLength(&position, end, strict: false, bounded: true)
      guard input.isValidUTF8(value) else { throw Fault(start, .invalidUTF8) }
      return value
    } catch {
      throw error.naming(kind, field)
    }
  }

  // Attributes (KeyValue → AnyValue) are most of an SDK request's fields, so these two read
  // their usual one-byte tags directly; any other field goes through the rule table. Neither
  // message is on the §6.3 path, so nothing here is strict.

  private mutating func walkKeyValue(_ range: Range<Int>, depth: Int) throws(Fault) {
    let end = range.upperBound
    var position = range.lowerBound
    while position < end {
      switch input.byte(position) {
      case 0x0A:  // key
        position += 1
        _ = try readString(.keyValue, 1, &position, end)
      case 0x12:  // value
        position += 1
        let value: Range<Int>
        do throws(Fault) {
          value = try input.readLength(&position, end, strict: false, bounded: true)
        } catch {
          throw error.naming(.keyValue, 2)
        }
        guard depth < WireLimits.messageDepth else { throw Fault(value.lowerBound, .depthLimit).naming(.anyValue, 0) }
        // The usual value is one string_value filling the AnyValue: check it here.
        if value.count >= 2, input.byte(value.lowerBound) == 0x0A, input.byte(value.lowerBound + 1) < 0x80,
          Int(input.byte(value.lowerBound + 1)) == value.count - 2
        {
          let text = value.lowerBound + 2..<value.upperBound
          guard input.isValidUTF8(text) else { throw Fault(value.lowerBound + 1, .invalidUTF8).naming(.anyValue, 1) }
        } else {
          try walkAnyValue(value, depth: depth + 1)
        }
      default:
        try step(.keyValue, &position, end, depth: depth, strict: false)
      }
    }
  }

  private mutating func walkAnyValue(_ range: Range<Int>, depth: Int) throws(Fault) {
    let end = range.upperBound
    var position = range.lowerBound
    while position < end {
      switch input.byte(position) {
      case 0x0A:  // string_value
        position += 1
        _ = try readString(.anyValue, 1, &position, end)
      case 0x10, 0x18:  // bool_value, int_value
        position += 1
        if position < end && input.byte(position) < 0x80 {
          position += 1
        } else {
          position -= 1
          try step(.anyValue, &position, end, depth: depth, strict: false)
        }
      default:
        try step(.anyValue, &position, end, depth: depth, strict: false)
      }
    }
  }

  @inline(__always)
  private mutating func readField(
    _ kind: MessageKind, field: UInt32, wire: UInt8, _ position: inout Int, _ end: Int, depth: Int, strict: Bool
  ) throws(Fault) {
    switch kind.rule(field) {
    case .unknown:
      break
    case .varint:
      if wire == 0 {
        _ = try input.readVarint(&position, end, strict: strict)
        if kind == .tenantAnyValue { attributeString = nil }
        return
      }
    case .fixed64:
      if wire == 1 {
        try input.skipFixed(&position, end, width: 8)
        if kind == .tenantAnyValue { attributeString = nil }
        return
      }
    case .fixed32:
      if wire == 5 {
        try input.skipFixed(&position, end, width: 4)
        return
      }
    case .string:
      if wire == 2 {
        let start = position
        let value = try input.readLength(&position, end, strict: strict, bounded: true)
        guard input.isValidUTF8(value) else { throw Fault(start, .invalidUTF8) }
        if kind == .tenantAnyValue {
          attributeString = value
        } else if kind == .tenantKeyValue {
          attributeKey = value
        }
        return
      }
    case .bytes:
      if wire == 2 {
        _ = try input.readLength(&position, end, strict: strict, bounded: true)
        if kind == .tenantAnyValue { attributeString = nil }
        return
      }
    case .repeatedFixed64, .repeatedDouble:
      if wire == 1 {
        try input.skipFixed(&position, end, width: 8)
        return
      }
      if wire == 2 {
        let start = position
        let packed = try input.readLength(
          &position, end, strict: strict, bounded: kind.rule(field) == .repeatedFixed64)
        guard packed.count % 8 == 0 else { throw Fault(start, .packedLengthNotMultipleOf8(packed.count)) }
        return
      }
    case .repeatedVarint:
      if wire == 0 {
        _ = try input.readVarint(&position, end, strict: strict)
        return
      }
      if wire == 2 {
        let packed = try input.readLength(&position, end, strict: strict, bounded: true)
        var index = packed.lowerBound
        while index < packed.upperBound {
          _ = try input.readVarint(&index, packed.upperBound, strict: false)
        }
        return
      }
    case .message(let sub):
      if wire == 2 {
        let body = try input.readLength(&position, end, strict: strict, bounded: true)
        try walk(sub, body, depth: depth + 1)
        if kind == .tenantAnyValue { attributeString = nil }
        return
      }
    case .timeWalkedMessage(let sub):
      guard wire == 2 else { throw Fault(position, .notLengthDelimited) }
      let body = try input.readLength(&position, end, strict: strict, bounded: true)
      try walk(sub, body, depth: depth + 1)
      return
    case .timeWalkedFixed64(let slot):
      guard wire == 1 else { throw Fault(position, .notFixed64) }
      guard end - position >= 8 else { throw Fault(position, .truncatedFixed) }
      let value = input.fixed64(position)
      position += 8
      if slot == 0 { times.0 = value } else { times.1 = value }
      return
    }
    // Unknown, or a known field with another wire type: swift-protobuf keeps it as an unknown field.
    if refusingUnknownFields { throw Fault(position, .unknownField(wire: wire)) }
    try input.skipValue(
      &position, end, field: UInt64(field), wire: wire, depth: depth, groupDepth: 0, strict: strict)
  }
}
