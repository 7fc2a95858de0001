import Ingest
internal import Manifest
internal import NIOHTTP1

/// OTLP/HTTP's request routing and response bodies, kept apart from the channel handler so they
/// can be tested and reasoned about without I/O.
enum OTLPHTTPProtocol {
  /// The signal an OTLP/HTTP path is for (`/v1/traces`, `/v1/logs`, `/v1/metrics`); `nil` for any
  /// other path. A query string is ignored, as exporters never send one.
  static func signal(forURI uri: String) -> Signal? {
    // Compared as bytes: this runs for every request, and splitting the URI allocates.
    var path = Substring(uri).utf8
    if let query = path.firstIndex(of: UInt8(ascii: "?")) { path = path[..<query] }
    if path.elementsEqual("/v1/traces".utf8) { return .traces }
    if path.elementsEqual("/v1/logs".utf8) { return .logs }
    if path.elementsEqual("/v1/metrics".utf8) { return .metrics }
    return nil
  }

  /// The body encoding a `Content-Type` value names, parameters (`; charset=utf-8`) ignored;
  /// `nil` for anything else.
  static func encoding(forContentType value: String?) -> OTLPEncoding? {
    guard let value else { return nil }
    // Compared as bytes, case-insensitively, without building new strings: this runs for every
    // request.
    var mediaType = Substring(value).utf8
    if let parameters = mediaType.firstIndex(of: UInt8(ascii: ";")) {
      mediaType = mediaType[..<parameters]
    }
    let space = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
    while let first = mediaType.first, space(first) { mediaType = mediaType.dropFirst() }
    while let last = mediaType.last, space(last) { mediaType = mediaType.dropLast() }
    if equalsIgnoringASCIICase(mediaType, "application/x-protobuf") { return .protobuf }
    if equalsIgnoringASCIICase(mediaType, "application/json") { return .json }
    return nil
  }

  /// Whether `bytes` spell `lowercased` in any ASCII case.
  private static func equalsIgnoringASCIICase(_ bytes: Substring.UTF8View, _ lowercased: StaticString) -> Bool {
    lowercased.withUTF8Buffer { expected in
      bytes.count == expected.count
        && zip(bytes, expected).allSatisfy { byte, want in
          (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 == want : byte == want
        }
    }
  }

  /// What a request's `Content-Encoding` headers ask for.
  enum ContentCoding: Equatable {
    /// No header, an empty value or `identity`.
    case identity
    /// `gzip` or `deflate` (inflated by `NIOHTTPRequestDecompressor`) or `zstd` (by
    /// ``ZstdRequestDecompressor``), before the handler sees the body. `Content-Length` then
    /// counts the encoded bytes on the wire, not the body the handler receives.
    case compressed(String)
    /// Anything else: the body cannot be read (415).
    case unsupported(String)
  }

  /// Classifies `Content-Encoding` exactly as `NIOHTTPRequestDecompressor` decides whether to
  /// inflate (the first value, lowercased, equal to `gzip` or `deflate`), so a body the handler
  /// accepts as compressed is always one the decompressor inflated; ``ZstdRequestDecompressor``
  /// calls this very function to pick the `zstd` bodies it inflates.
  static func contentCoding(_ headers: HTTPHeaders) -> ContentCoding {
    let values = headers[canonicalForm: "Content-Encoding"].map { String($0) }
    guard let first = values.first else { return .identity }
    let lowered = first.lowercased()
    if values.count > 1 {
      // Stacked codings (`gzip, gzip`) are legal HTTP but no OTLP exporter sends them, and the
      // decompressor only undoes one.
      return .unsupported(values.joined(separator: ", "))
    }
    switch lowered {
    case "", "identity": return .identity
    case "gzip", "deflate", "zstd": return .compressed(lowered)
    default: return .unsupported(first)
    }
  }

  /// A request line can hold any bytes the decoder let through; keep log lines and answers short
  /// and printable.
  static func printable(_ text: String) -> String {
    let cut = text.unicodeScalars.prefix(200).map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }
    return String(cut) + (text.unicodeScalars.count > 200 ? "…" : "")
  }

  /// The response content type for a body in `encoding`.
  static func contentType(_ encoding: OTLPEncoding) -> String {
    switch encoding {
    case .protobuf: return "application/x-protobuf"
    case .json: return "application/json"
    }
  }

  /// The body of a 200: an empty `Export…ServiceResponse` (no `partial_success`: everything in a
  /// journaled request was kept). Its protobuf serialization is zero bytes.
  static func successBody(_ encoding: OTLPEncoding) -> [UInt8] {
    switch encoding {
    case .protobuf: return []
    case .json: return Array("{}".utf8)
    }
  }

  /// A `google.rpc.Status` with `code` and `message` (no details), as OTLP/HTTP requires for every
  /// 4xx and 5xx body. Hand-encoded: field 1 `int32 code` (varint, omitted when 0, as proto3
  /// does), field 2 `string message`.
  static func statusBody(code: Int32, message: String, encoding: OTLPEncoding) -> [UInt8] {
    switch encoding {
    case .protobuf:
      var out: [UInt8] = []
      if code != 0 {
        out.append(0x08)
        appendVarint(UInt64(bitPattern: Int64(code)), to: &out)
      }
      let text = Array(message.utf8)
      if !text.isEmpty {
        out.append(0x12)
        appendVarint(UInt64(text.count), to: &out)
        out.append(contentsOf: text)
      }
      return out
    case .json:
      var out = Array("{\"code\":\(code),\"message\":\"".utf8)
      appendJSONEscaped(message, to: &out)
      out.append(contentsOf: Array("\"}".utf8))
      return out
    }
  }

  private static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
    var value = value
    while value >= 0x80 {
      out.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    out.append(UInt8(value))
  }

  /// RFC 8259 string escaping: quote, backslash and control characters; everything else is
  /// UTF-8 as is.
  private static func appendJSONEscaped(_ text: String, to out: inout [UInt8]) {
    let hex = Array("0123456789abcdef".utf8)
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
      case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
      case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
      case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
      case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
      case 0..<0x20:
        out.append(contentsOf: Array("\\u00".utf8))
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 0xF)])
      default: out.append(byte)
      }
    }
  }
}

/// A non-200 answer: the HTTP status, the `google.rpc.Status` code for its body, and whether the
/// connection must close after it.
struct OTLPHTTPRejection: Sendable, Equatable {
  var status: HTTPResponseStatus
  /// The gRPC status code number OTLP/gRPC would answer with (OTLP/HTTP's body reuses it).
  var grpcCode: Int32
  var message: String
  var retryAfterSeconds: Int?
  /// Close instead of keeping the connection: the body cannot be skipped cheaply (too large,
  /// undecodable framing) or the exchange is broken.
  var closeConnection: Bool = false
  /// Extra response headers (`Allow` for 405).
  var headers: [(String, String)] = []
  /// What the refusal is counted as in the metrics.
  var reason: RefusalReason

  static func == (lhs: OTLPHTTPRejection, rhs: OTLPHTTPRejection) -> Bool {
    lhs.status == rhs.status && lhs.grpcCode == rhs.grpcCode && lhs.message == rhs.message
      && lhs.retryAfterSeconds == rhs.retryAfterSeconds && lhs.closeConnection == rhs.closeConnection
      && lhs.headers.elementsEqual(rhs.headers, by: { $0 == $1 })
  }

  /// The HTTP status and gRPC code for an admission rejection (the table in `Admission.swift`).
  init(_ rejected: RejectedRequest, closeConnection: Bool = false) {
    switch rejected.kind {
    case .malformed: (status, grpcCode) = (.badRequest, GRPCCode.invalidArgument)
    case .unsupportedMediaType: (status, grpcCode) = (.unsupportedMediaType, GRPCCode.invalidArgument)
    case .payloadTooLarge: (status, grpcCode) = (.payloadTooLarge, GRPCCode.resourceExhausted)
    case .overloaded: (status, grpcCode) = (.tooManyRequests, GRPCCode.resourceExhausted)
    case .unavailable: (status, grpcCode) = (.serviceUnavailable, GRPCCode.unavailable)
    case .tenantRejected: (status, grpcCode) = (.forbidden, GRPCCode.permissionDenied)
    case .internalError: (status, grpcCode) = (.internalServerError, GRPCCode.internal)
    }
    message = rejected.message
    retryAfterSeconds = rejected.retryAfterSeconds
    reason = rejected.reason
    self.closeConnection = closeConnection
  }

  init(
    status: HTTPResponseStatus, grpcCode: Int32, message: String, closeConnection: Bool = false,
    reason: RefusalReason, headers: [(String, String)] = []
  ) {
    self.reason = reason
    self.status = status
    self.grpcCode = grpcCode
    self.message = message
    self.retryAfterSeconds = nil
    self.closeConnection = closeConnection
    self.headers = headers
  }

  /// gRPC status code numbers (`google.rpc.Code`).
  enum GRPCCode {
    static let invalidArgument: Int32 = 3
    static let deadlineExceeded: Int32 = 4
    static let notFound: Int32 = 5
    static let permissionDenied: Int32 = 7
    static let resourceExhausted: Int32 = 8
    static let unimplemented: Int32 = 12
    static let `internal`: Int32 = 13
    static let unavailable: Int32 = 14
  }
}
