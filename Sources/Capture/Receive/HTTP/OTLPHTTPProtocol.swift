internal import Manifest
internal import NIOHTTP1

/// OTLP/HTTP's request routing and response bodies, kept apart from the channel handler so they
/// can be tested and reasoned about without I/O.
enum OTLPHTTPProtocol {
  /// The signal an OTLP/HTTP path is for (`/v1/traces`, `/v1/logs`, `/v1/metrics`); `nil` for any
  /// other path. A query string is ignored, as exporters never send one.
  static func signal(forURI uri: String) -> Signal? {
    let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    switch path {
    case "/v1/traces": return .traces
    case "/v1/logs": return .logs
    case "/v1/metrics": return .metrics
    default: return nil
    }
  }

  /// The body encoding a `Content-Type` value names, parameters (`; charset=utf-8`) ignored;
  /// `nil` for anything else.
  static func encoding(forContentType value: String?) -> OTLPEncoding? {
    guard let value else { return nil }
    let mediaType = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    switch mediaType.trimmingASCIISpaces().lowercased() {
    case "application/x-protobuf": return .protobuf
    case "application/json": return .json
    default: return nil
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

extension Substring {
  /// Drops leading and trailing spaces and tabs (HTTP's optional whitespace).
  func trimmingASCIISpaces() -> Substring {
    var slice = self
    while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
    while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
    return slice
  }
}
