public import CodedErrors

/// Why credentials or the settings around them could not be read.
public enum CredentialsErrorCode: Sendable, Hashable {
  /// A required environment variable is not set.
  case missingVariable
  /// A required value is set but empty (or only whitespace).
  case emptyValue
  /// A value holds characters that would break the request it goes into (a `/` in an access key
  /// id splits the credential scope; a line break in a session token splits a header).
  case invalidValue
}

/// Credentials and region settings that cannot be used. Messages name the variable or field,
/// never the secret or token they hold.
public typealias CredentialsError = CodedError<CredentialsErrorCode>

/// Why a request could not be signed.
public enum SigV4ErrorCode: Sendable, Hashable {
  /// The method is empty or not an HTTP token.
  case invalidMethod
  /// The path is not an absolute path as sent on the wire (no leading `/`, a `?` or `#` in it,
  /// or a `%` that does not start a two-digit escape).
  case invalidPath
  /// A header name is empty or not an HTTP token.
  case invalidHeaderName
  /// A header value holds a control character, or a line break that is not a folded
  /// continuation line.
  case invalidHeaderValue
  /// The caller set a header or query parameter the signer owns (`Authorization`,
  /// `X-Amz-Date`, `X-Amz-Security-Token`, `X-Amz-Content-SHA256`, the `X-Amz-*` presigning
  /// parameters).
  case reservedName
  /// There is no `Host` header; SigV4 always signs the host.
  case missingHost
  /// A given payload hash is not 64 lowercase hex digits.
  case invalidPayloadHash
  /// The region or service is empty or holds a `/`, whitespace or a control character.
  case invalidScope
  /// The signing time cannot be written as `YYYYMMDD'T'HHMMSS'Z'` (before 1970 or after 9999).
  case invalidTime
  /// A presigned URL's lifetime is outside 1 second to 7 days.
  case invalidExpiry
  /// libcrypto failed to compute an HMAC (it only does when out of memory).
  case cryptoFailure
}

/// A request that cannot be signed, with the header, parameter or field at fault.
public typealias SigV4Error = CodedError<SigV4ErrorCode>
