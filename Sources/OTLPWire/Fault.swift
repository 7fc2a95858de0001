/// What went wrong, before it is turned into an ``OTLPWireError`` at the public boundary; kept
/// small and free of strings so the hot path only carries it when something is wrong.
enum Problem: Equatable {
  case truncatedVarint
  case varintTooLong
  /// The §6.3 walk's rule: a tenth varint byte above 1 overflows 64 bits.
  case varintOverflow
  case invalidWireType(UInt8)
  case fieldNumberZero
  case tagTooLong
  case invalidTag(UInt64)
  case endGroupOutsideGroup
  case mismatchedEndGroup(UInt64)
  case unterminatedGroup
  case truncatedFixed
  case lengthPastEnd(UInt64)
  case lengthOver2GiB(UInt64)
  case invalidUTF8
  case packedLengthNotMultipleOf8(Int)
  case depthLimit
  case groupsTooDeep
  case notLengthDelimited
  case notFixed64
  case rangeOutsideRequest
  /// A time shift by this many nanoseconds would leave a timestamp outside 1...UInt64.max.
  case shiftOutOfRange(Int64)
  /// A field the schema does not have, or a known field with another wire type (which
  /// swift-protobuf keeps as an unknown field), when the caller refuses unknown fields.
  case unknownField(wire: UInt8)

  var text: String {
    switch self {
    case .truncatedVarint: return "truncated varint"
    case .varintTooLong: return "varint longer than 10 bytes"
    case .varintOverflow: return "varint overflows 64 bits"
    case .invalidWireType(let wire): return "invalid wire type \(wire)"
    case .fieldNumberZero: return "invalid field number 0"
    case .tagTooLong: return "field tag longer than 5 bytes or over field number 536870911"
    case .invalidTag(let tag): return "invalid field tag \(tag)"
    case .endGroupOutsideGroup: return "end-group tag without a matching start"
    case .mismatchedEndGroup(let field): return "end-group \(field) does not close the open group"
    case .unterminatedGroup: return "group has no end-group tag"
    case .truncatedFixed: return "truncated fixed-width field"
    case .lengthPastEnd(let length): return "length \(length) runs past the end of its message"
    case .lengthOver2GiB(let length): return "length \(length) is 2 GiB or more"
    case .invalidUTF8: return "invalid UTF-8"
    case .packedLengthNotMultipleOf8(let length): return "packed length \(length) is not a multiple of 8"
    case .depthLimit: return "messages and groups nested deeper than \(WireLimits.messageDepth)"
    case .groupsTooDeep: return "groups nested deeper than \(WireLimits.timeWalkGroupDepth)"
    case .notLengthDelimited: return "not length-delimited"
    case .notFixed64: return "not fixed64"
    case .rangeOutsideRequest: return "byte range outside the request"
    case .shiftOutOfRange(let nanos): return "timestamp shifted by \(nanos) ns leaves the u64 range"
    case .unknownField(let wire): return "unknown field (wire type \(wire))"
    }
  }
}

/// A refusal found inside the reader; `kind`/`field` name where, once known.
struct Fault: Error {
  var offset: Int
  var problem: Problem
  var kind: MessageKind?
  var field: UInt32 = 0

  init(_ offset: Int, _ problem: Problem) {
    self.offset = offset
    self.problem = problem
  }

  /// The same fault, said to be in `kind`'s `field` unless an inner message already claimed it.
  func naming(_ kind: MessageKind, _ field: UInt32) -> Fault {
    guard self.kind == nil else { return self }
    var named = self
    named.kind = kind
    named.field = field
    return named
  }

  var publicError: OTLPWireError {
    guard let kind else { return OTLPWireError(offset: offset, message: problem.text) }
    let path = field == 0 ? kind.name : "\(kind.name).\(kind.fieldName(field))"
    return OTLPWireError(offset: offset, message: "\(path): \(problem.text)")
  }
}

enum WireLimits {
  /// swift-protobuf's default `BinaryDecodingOptions.messageDepthLimit`: the request is depth 1,
  /// and every sub-message and every (unknown-field) group adds one, empty ones included.
  static let messageDepth = 100
  /// §6.3's bound on nested groups, counted afresh in each message the time walk reads.
  static let timeWalkGroupDepth = 64
  /// swift-protobuf refuses string, bytes, message and packed lengths from 0x7fff_ffff on.
  static let maxFieldLength: UInt64 = 0x7fff_ffff
}
