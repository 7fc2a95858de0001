public import CodedErrors
import EvidenceIO
import Manifest

/// One header of a request: a name and a value, kept in the order given (repeated names are
/// joined in that order when signed).
public struct HTTPField: Sendable, Hashable {
  /// The name, in any case.
  public var name: String
  /// The value as it will be sent.
  public var value: String

  public init(_ name: String, _ value: String) {
    self.name = name
    self.value = value
  }
}

/// One query parameter, not yet encoded (the signer encodes it).
public struct QueryParameter: Sendable, Hashable {
  /// The name, decoded.
  public var name: String
  /// The value, decoded; empty for a parameter such as `?lifecycle`.
  public var value: String

  public init(_ name: String, _ value: String = "") {
    self.name = name
    self.value = value
  }
}

/// What the signer needs of an HTTP request.
public struct SigV4Request: Sendable, Hashable {
  /// The method, as sent (`GET`, `PUT`...).
  public var method: String
  /// The path as sent on the wire, percent-encoded, starting with `/` and without the query.
  /// ``SigV4Encoding/encode(_:keepingSlash:)`` makes one from an object key.
  public var path: String
  /// The query parameters, decoded.
  public var query: [QueryParameter]
  /// The headers to sign; `Host` is required. The signer adds `X-Amz-Date`,
  /// `X-Amz-Security-Token` and (for S3) `X-Amz-Content-SHA256` itself.
  public var headers: [HTTPField]

  public init(method: String, path: String, query: [QueryParameter] = [], headers: [HTTPField]) {
    self.method = method
    self.path = path
    self.query = query
    self.headers = headers
  }
}

/// The body as SigV4 sees it: the hex SHA-256 that ends the canonical request.
public enum SigV4Payload: Sendable, Hashable {
  /// The body itself, hashed by the signer.
  case bytes([UInt8])
  /// The lowercase hex SHA-256 of a body hashed elsewhere (a sealed segment already has one).
  case sha256Hex(String)
  /// `UNSIGNED-PAYLOAD`: the body is not covered (S3 only; TLS and, for Object Lock, the
  /// `x-amz-checksum-sha256` header protect it instead).
  case unsigned

  /// The SHA-256 of an empty body.
  public static let emptySHA256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

  func hashed() throws(SigV4Error) -> String {
    switch self {
    case .bytes(let body):
      return SHA256Digest.hex(of: body)
    case .sha256Hex(let hex):
      guard hex.utf8.count == 64, Hex.decode(hex) != nil else {
        throw SigV4Error(.invalidPayloadHash, "payload hash \(hex.debugDescription) is not 64 lowercase hex digits")
      }
      return hex
    case .unsigned:
      return "UNSIGNED-PAYLOAD"
    }
  }
}

/// The region and service a signature is scoped to.
public struct SigningScope: Sendable, Hashable {
  /// The region (`us-east-1`; for Ceph RGW, its zonegroup's API name).
  public let region: String
  /// The service (`s3`).
  public let service: String

  /// - Throws: ``SigV4Error`` with ``SigV4ErrorCode/invalidScope`` when either is empty or holds
  ///   a `/`, whitespace or a control character (the scope is `/`-separated).
  public init(region: String, service: String) throws(SigV4Error) {
    for (field, value) in [("region", region), ("service", service)] where !Self.isScopeComponent(value) {
      throw SigV4Error(
        .invalidScope, "\(field) \(value.debugDescription) is empty or holds a '/', whitespace or a control character")
    }
    self.region = region
    self.service = service
  }

  static func isScopeComponent(_ value: String) -> Bool {
    !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") }
  }

  /// `YYYYMMDD/region/service/aws4_request`.
  func credentialScope(_ time: SigningTime) -> String {
    "\(time.dateStamp)/\(region)/\(service)/aws4_request"
  }
}

/// A request signed in its headers: the headers to add, and every intermediate value, so a
/// `SignatureDoesNotMatch` can be diagnosed by comparing with what the server says it expected.
public struct SignedRequest: Sendable, Hashable {
  /// The canonical request that was hashed.
  public let canonicalRequest: String
  /// The string to sign.
  public let stringToSign: String
  /// The hex signature.
  public let signature: String
  /// The `Authorization` header value.
  public let authorization: String
  /// The canonical query string, also the query to send (`name=value&...`, without `?`).
  public let canonicalQuery: String
  /// The headers the request must carry besides its own, in this order: `x-amz-date`,
  /// `x-amz-content-sha256` (S3), `x-amz-security-token` (temporary credentials),
  /// `authorization`.
  public let addedHeaders: [HTTPField]
}

/// A request signed in its query string (a presigned URL).
public struct PresignedRequest: Sendable, Hashable {
  /// The canonical request that was hashed.
  public let canonicalRequest: String
  /// The string to sign.
  public let stringToSign: String
  /// The hex signature.
  public let signature: String
  /// The whole query to send: the canonical query with `X-Amz-Signature` appended.
  public let query: String
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), for S3-compatible object stores and, with
/// ``CanonicalPathRules/normalizedDoubleEncoded``, for other AWS services.
///
/// Signing is a pure function of the request, the payload and the time it is given: nothing
/// reads a clock, so tests are deterministic and a retry can be signed again explicitly.
public struct SigV4Signer: Sendable {
  /// The algorithm name, first line of the string to sign.
  public static let algorithm = "AWS4-HMAC-SHA256"
  /// The longest a presigned URL may live: 7 days.
  public static let maximumPresignedLifetime = 604_800

  public let credentials: AWSCredentials
  public let scope: SigningScope
  public let pathRules: CanonicalPathRules
  /// Whether the signer adds and signs `x-amz-content-sha256` (S3 requires it).
  public let addsContentSHA256Header: Bool

  public init(
    credentials: AWSCredentials, scope: SigningScope, pathRules: CanonicalPathRules, addsContentSHA256Header: Bool
  ) {
    self.credentials = credentials
    self.scope = scope
    self.pathRules = pathRules
    self.addsContentSHA256Header = addsContentSHA256Header
  }

  /// A signer for an S3-compatible store: service `s3`, S3's path rules, `x-amz-content-sha256`.
  public static func s3(credentials: AWSCredentials, region: String) throws(SigV4Error) -> SigV4Signer {
    SigV4Signer(
      credentials: credentials, scope: try SigningScope(region: region, service: "s3"), pathRules: .s3,
      addsContentSHA256Header: true)
  }

  /// Signs `request` in its headers.
  ///
  /// - Throws: ``SigV4Error`` naming the method, path, header or value that cannot be signed.
  public func sign(_ request: SigV4Request, payload: SigV4Payload, at time: SigningTime) throws(SigV4Error)
    -> SignedRequest
  {
    var reserved: Set<String> = ["authorization", "x-amz-date", "x-amz-security-token"]
    if addsContentSHA256Header { reserved.insert("x-amz-content-sha256") }
    try refuseReservedHeaders(request.headers, reserved)
    let payloadHash = try payload.hashed()
    var added = [HTTPField("x-amz-date", time.amzDate)]
    if addsContentSHA256Header { added.append(HTTPField("x-amz-content-sha256", payloadHash)) }
    if let token = credentials.sessionToken { added.append(HTTPField("x-amz-security-token", token)) }

    let headers = try CanonicalHeaders(request.headers + added)
    let query = canonicalQueryString(request.query)
    let parts = try signature(request, query: query, headers: headers, payloadHash: payloadHash, time: time)
    let authorization =
      "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope.credentialScope(time)), "
      + "SignedHeaders=\(headers.signedHeaders), Signature=\(parts.signature)"
    return SignedRequest(
      canonicalRequest: parts.canonicalRequest, stringToSign: parts.stringToSign, signature: parts.signature,
      authorization: authorization, canonicalQuery: query,
      addedHeaders: added + [HTTPField("authorization", authorization)])
  }

  /// Signs `request` in its query string, valid for `lifetime` seconds from `time`. The
  /// session token, if any, is signed as `X-Amz-Security-Token`. S3 presigns with
  /// `UNSIGNED-PAYLOAD` (the default); other services with the hash of the body.
  ///
  /// - Throws: ``SigV4Error``: ``SigV4ErrorCode/invalidExpiry`` for a lifetime outside 1 s to
  ///   7 days, ``SigV4ErrorCode/reservedName`` for a query parameter the signer adds, and what
  ///   ``sign(_:payload:at:)`` refuses.
  public func presign(
    _ request: SigV4Request, lifetime: Int, payload: SigV4Payload = .unsigned, at time: SigningTime
  ) throws(SigV4Error) -> PresignedRequest {
    guard (1...Self.maximumPresignedLifetime).contains(lifetime) else {
      throw SigV4Error(
        .invalidExpiry, "a presigned lifetime of \(lifetime) s is outside 1...\(Self.maximumPresignedLifetime)")
    }
    try refuseReservedHeaders(request.headers, ["authorization", "x-amz-date", "x-amz-security-token"])
    let reservedParameters: Set<String> = [
      "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders",
      "x-amz-signature", "x-amz-security-token",
    ]
    if let clash = request.query.first(where: { reservedParameters.contains($0.name.lowercased()) }) {
      throw SigV4Error(.reservedName, "query parameter \(clash.name) is set by the signer, not the caller")
    }
    let headers = try CanonicalHeaders(request.headers)
    var query =
      request.query + [
        QueryParameter("X-Amz-Algorithm", Self.algorithm),
        QueryParameter("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope.credentialScope(time))"),
        QueryParameter("X-Amz-Date", time.amzDate),
        QueryParameter("X-Amz-Expires", String(lifetime)),
        QueryParameter("X-Amz-SignedHeaders", headers.signedHeaders),
      ]
    if let token = credentials.sessionToken { query.append(QueryParameter("X-Amz-Security-Token", token)) }
    let canonicalQuery = canonicalQueryString(query)
    let parts = try signature(
      request, query: canonicalQuery, headers: headers, payloadHash: try payload.hashed(), time: time)
    return PresignedRequest(
      canonicalRequest: parts.canonicalRequest, stringToSign: parts.stringToSign, signature: parts.signature,
      query: canonicalQuery + "&X-Amz-Signature=" + parts.signature)
  }

  private func refuseReservedHeaders(_ headers: [HTTPField], _ reserved: Set<String>) throws(SigV4Error) {
    if let clash = headers.first(where: { reserved.contains($0.name.lowercased()) }) {
      throw SigV4Error(.reservedName, "header \(clash.name) is set by the signer, not the caller")
    }
  }

  private func signature(
    _ request: SigV4Request, query: String, headers: CanonicalHeaders, payloadHash: String, time: SigningTime
  ) throws(SigV4Error) -> (canonicalRequest: String, stringToSign: String, signature: String) {
    guard !request.method.isEmpty, request.method.utf8.allSatisfy(SigV4Encoding.isTokenByte) else {
      throw SigV4Error(.invalidMethod, "method \(request.method.debugDescription) is not an HTTP token")
    }
    guard headers.entries.contains(where: { $0.name == "host" }) else {
      throw SigV4Error(.missingHost, "the request has no Host header, which SigV4 always signs")
    }
    let canonicalRequest = [
      request.method, try pathRules.canonicalURI(of: request.path), query, headers.block, headers.signedHeaders,
      payloadHash,
    ].joined(separator: "\n")
    let stringToSign = [
      Self.algorithm, time.amzDate, scope.credentialScope(time),
      SHA256Digest.hex(of: Array(canonicalRequest.utf8)),
    ].joined(separator: "\n")
    let key = try signingKey(time)
    return (canonicalRequest, stringToSign, Hex.encode(try Self.hmac(key, stringToSign)))
  }

  /// The signing key: HMAC-SHA256 chained from `"AWS4" + secret` over the date, region,
  /// service and `aws4_request`.
  func signingKey(_ time: SigningTime) throws(SigV4Error) -> [UInt8] {
    var key = Array(("AWS4" + credentials.secretAccessKey).utf8)
    for part in [time.dateStamp, scope.region, scope.service, "aws4_request"] {
      key = try Self.hmac(key, part)
    }
    return key
  }

  private static func hmac(_ key: [UInt8], _ message: String) throws(SigV4Error) -> [UInt8] {
    guard let code = HMACSHA256.code(of: Array(message.utf8), key: key) else {
      throw SigV4Error(.cryptoFailure, "libcrypto failed to compute HMAC-SHA256")
    }
    return code
  }
}
