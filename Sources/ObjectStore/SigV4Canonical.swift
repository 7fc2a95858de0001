import CodedErrors

/// The canonical forms SigV4 signs: URI encoding, the canonical URI, query string and headers.
/// Everything works on UTF-8 bytes, so no Unicode normalization can change what is signed.
public enum SigV4Encoding {
  /// `s` percent-encoded as SigV4 requires: the RFC 3986 unreserved characters
  /// (`A-Z a-z 0-9 - . _ ~`) as they are, every other UTF-8 byte as `%XX` with upper-case hex
  /// (so a space is `%20`, never `+`); `/` is kept when `keepingSlash` (object keys in a path).
  public static func encode(_ s: String, keepingSlash: Bool = false) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count)
    for byte in s.utf8 {
      if isUnreserved(byte) || (keepingSlash && byte == UInt8(ascii: "/")) {
        out.append(byte)
      } else {
        appendEscape(byte, to: &out)
      }
    }
    return String(decoding: out, as: UTF8.self)
  }

  static func isUnreserved(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
      UInt8(ascii: "~"):
      return true
    default:
      return false
    }
  }

  private static let hexDigits = Array("0123456789ABCDEF".utf8)

  static func appendEscape(_ byte: UInt8, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "%"))
    out.append(hexDigits[Int(byte >> 4)])
    out.append(hexDigits[Int(byte & 0x0F)])
  }

  static func isHexDigit(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "F"),
      UInt8(ascii: "a")...UInt8(ascii: "f"):
      return true
    default:
      return false
    }
  }

  /// Whether `byte` is an RFC 9110 `tchar`, the characters of a method or header name.
  static func isTokenByte(_ byte: UInt8) -> Bool {
    isUnreserved(byte) || tokenPunctuation.contains(byte)
  }

  /// The `tchar` punctuation besides the unreserved `-`, `.`, `_`, `~`.
  private static let tokenPunctuation = Set("!#$%&'*+^`|".utf8)
}

/// How the canonical URI is made from the request path. The two rules AWS documents differ, so
/// a signer for S3 and one for other services cannot share one.
public enum CanonicalPathRules: Sendable, Hashable {
  /// Amazon S3 (and S3-compatible stores such as Ceph RGW): the path is used as sent, encoded
  /// once and never normalized, because `a//b` and `a/./b` are distinct object keys. Escapes
  /// already in the path are kept (hex made upper case); other bytes that are not unreserved
  /// or `/` are escaped.
  case s3
  /// Every other service: dot segments and empty segments are removed, then the path as sent
  /// is encoded once more (its `%` becomes `%25`, the "double encoding" of the AWS docs).
  case normalizedDoubleEncoded
}

extension CanonicalPathRules {
  /// The canonical URI of `path`, a path as sent on the wire.
  func canonicalURI(of path: String) throws(SigV4Error) -> String {
    let bytes = Array(path.utf8)
    guard bytes.first == UInt8(ascii: "/") else {
      throw SigV4Error(.invalidPath, "path \(path.debugDescription) does not start with '/'")
    }
    if let bad = bytes.first(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
      throw SigV4Error(
        .invalidPath,
        "path \(path.debugDescription) holds '\(Character(Unicode.Scalar(bad)))'; query parameters go in `query`")
    }
    switch self {
    case .s3:
      var out: [UInt8] = []
      var index = 0
      while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%") {
          guard index + 2 < bytes.count, SigV4Encoding.isHexDigit(bytes[index + 1]),
            SigV4Encoding.isHexDigit(bytes[index + 2])
          else {
            throw SigV4Error(
              .invalidPath, "path \(path.debugDescription) has a '%' at byte \(index) that starts no %XX escape")
          }
          out.append(byte)
          out.append(Self.upperHex(bytes[index + 1]))
          out.append(Self.upperHex(bytes[index + 2]))
          index += 3
          continue
        }
        if SigV4Encoding.isUnreserved(byte) || byte == UInt8(ascii: "/") {
          out.append(byte)
        } else {
          SigV4Encoding.appendEscape(byte, to: &out)
        }
        index += 1
      }
      return String(decoding: out, as: UTF8.self)
    case .normalizedDoubleEncoded:
      return SigV4Encoding.encode(Self.removingDotAndEmptySegments(path), keepingSlash: true)
    }
  }

  private static func upperHex(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f") ? byte - 32 : byte
  }

  /// `path` with `.` and empty segments dropped and each `..` removing the segment before it;
  /// a trailing `/` stays when something is left before it (`//example//` is `/example/`).
  static func removingDotAndEmptySegments(_ path: String) -> String {
    var kept: [Substring] = []
    for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
      switch segment {
      case ".": continue
      case "..": _ = kept.popLast()
      default: kept.append(segment)
      }
    }
    guard !kept.isEmpty else { return "/" }
    return "/" + kept.joined(separator: "/") + (path.hasSuffix("/") ? "/" : "")
  }
}

/// Canonical headers: names lower-cased and sorted, values trimmed with runs of whitespace made
/// one space, repeated names joined with `,` in the order given.
struct CanonicalHeaders {
  /// `(lower-case name, canonical value)`, sorted by name, one entry per name.
  var entries: [(name: String, value: String)]

  init(_ fields: [HTTPField]) throws(SigV4Error) {
    var order: [String] = []
    var values: [String: [String]] = [:]
    for field in fields {
      let name = try Self.canonicalName(field.name)
      let value = try Self.canonicalValue(field.value, name: name)
      if values[name] == nil { order.append(name) }
      values[name, default: []].append(value)
    }
    entries = order.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
      .map { ($0, values[$0, default: []].joined(separator: ",")) }
  }

  var signedHeaders: String { entries.map(\.name).joined(separator: ";") }

  var block: String { entries.map { "\($0.name):\($0.value)\n" }.joined() }

  static func canonicalName(_ name: String) throws(SigV4Error) -> String {
    guard !name.isEmpty, name.utf8.allSatisfy(SigV4Encoding.isTokenByte) else {
      throw SigV4Error(.invalidHeaderName, "header name \(name.debugDescription) is not an HTTP token")
    }
    return String(decoding: name.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
  }

  /// The value trimmed, with spaces, tabs and folded line breaks (a CR LF or LF followed by a
  /// space or tab, RFC 9112 §5.2 `obs-fold`, which the AWS test suite signs as one space) made
  /// one space. Any other control character, and a line break that does not fold, is refused:
  /// signed, it would smuggle a second header into the request.
  static func canonicalValue(_ value: String, name: String) throws(SigV4Error) -> String {
    let bytes = Array(value.utf8)
    var out: [UInt8] = []
    var pendingSpace = false
    var index = 0
    while index < bytes.count {
      let byte = bytes[index]
      switch byte {
      case UInt8(ascii: " "), UInt8(ascii: "\t"):
        pendingSpace = true
      case UInt8(ascii: "\r"), UInt8(ascii: "\n"):
        var next = index + 1
        if byte == UInt8(ascii: "\r") {
          guard next < bytes.count, bytes[next] == UInt8(ascii: "\n") else {
            throw refusal(name, "a carriage return not followed by a line feed", at: index)
          }
          next += 1
        }
        guard next < bytes.count, bytes[next] == UInt8(ascii: " ") || bytes[next] == UInt8(ascii: "\t") else {
          throw refusal(name, "a line break not followed by a space or tab (not a folded line)", at: index)
        }
        pendingSpace = true
        index = next
        continue
      case 0x00..<0x20, 0x7F:
        throw refusal(name, "the control character 0x\(String(byte, radix: 16))", at: index)
      default:
        if pendingSpace, !out.isEmpty { out.append(UInt8(ascii: " ")) }
        pendingSpace = false
        out.append(byte)
      }
      index += 1
    }
    return String(decoding: out, as: UTF8.self)
  }

  private static func refusal(_ name: String, _ what: String, at offset: Int) -> SigV4Error {
    SigV4Error(.invalidHeaderValue, "header \(name)'s value holds \(what) at byte \(offset)")
  }
}

/// The canonical query string: names and values encoded, pairs sorted by encoded name, then by
/// encoded value, a parameter without a value written `name=`.
func canonicalQueryString(_ parameters: [QueryParameter]) -> String {
  parameters.map { (SigV4Encoding.encode($0.name), SigV4Encoding.encode($0.value)) }
    .sorted { left, right in
      left.0 == right.0
        ? left.1.utf8.lexicographicallyPrecedes(right.1.utf8) : left.0.utf8.lexicographicallyPrecedes(right.0.utf8)
    }
    .map { "\($0.0)=\($0.1)" }
    .joined(separator: "&")
}
