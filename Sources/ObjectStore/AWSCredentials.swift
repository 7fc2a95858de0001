public import CodedErrors
import Foundation

/// An access key pair, and the session token that comes with temporary credentials.
///
/// The secret and the token never appear in `description`, `debugDescription` or a `Mirror`
/// (so not in `print`, `dump` or string interpolation either): only the access key id, which
/// AWS treats as an identifier, is shown.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
  CustomReflectable
{
  /// The access key id (`AWS_ACCESS_KEY_ID`), sent in clear in every signed request.
  public let accessKeyID: String
  /// The secret access key: only ever the first HMAC key of the signing-key derivation.
  let secretAccessKey: String
  /// The session token of temporary credentials (`AWS_SESSION_TOKEN`), sent as
  /// `X-Amz-Security-Token`; `nil` for long-term keys.
  public let sessionToken: String?

  /// Credentials from their parts.
  ///
  /// - Throws: ``CredentialsError`` with ``CredentialsErrorCode/emptyValue`` for an empty access
  ///   key id or secret, ``CredentialsErrorCode/invalidValue`` for an access key id holding a
  ///   `/`, `,`, `=`, whitespace or a control character (each would change how the
  ///   `Authorization` header reads), or a session token holding a control character.
  public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) throws(CredentialsError) {
    guard !accessKeyID.isEmpty else {
      throw CredentialsError(.emptyValue, "the access key id is empty")
    }
    guard accessKeyID.utf8.allSatisfy(Self.isAccessKeyIDByte) else {
      throw CredentialsError(
        .invalidValue,
        "the access key id \(accessKeyID.debugDescription) holds a character a credential scope cannot carry"
          + " ('/', ',', '=', whitespace or a control character)")
    }
    guard !secretAccessKey.isEmpty else {
      throw CredentialsError(.emptyValue, "the secret access key is empty")
    }
    if let sessionToken {
      guard !sessionToken.isEmpty else {
        throw CredentialsError(.emptyValue, "the session token is empty (leave it out for long-term keys)")
      }
      guard sessionToken.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
        throw CredentialsError(
          .invalidValue, "the session token holds whitespace or a control character, which a header cannot carry")
      }
    }
    self.accessKeyID = accessKeyID
    self.secretAccessKey = secretAccessKey
    self.sessionToken = sessionToken
  }

  /// The environment variables the AWS SDKs and CLI read credentials from.
  public enum EnvironmentVariable {
    /// `AWS_ACCESS_KEY_ID`, required.
    public static let accessKeyID = "AWS_ACCESS_KEY_ID"
    /// `AWS_SECRET_ACCESS_KEY`, required.
    public static let secretAccessKey = "AWS_SECRET_ACCESS_KEY"
    /// `AWS_SESSION_TOKEN`, optional (temporary credentials only).
    public static let sessionToken = "AWS_SESSION_TOKEN"
  }

  /// Credentials from the process environment; see ``fromEnvironment(_:)``.
  public static func fromEnvironment() throws(CredentialsError) -> AWSCredentials {
    try fromEnvironment(ProcessInfo.processInfo.environment)
  }

  /// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, when set and not empty,
  /// `AWS_SESSION_TOKEN` (the AWS SDKs also treat an empty token as absent).
  ///
  /// - Parameter environment: the variables to read (``fromEnvironment()`` passes the process
  ///   environment; tests pass a dictionary).
  /// - Throws: ``CredentialsError``: ``CredentialsErrorCode/missingVariable`` naming the unset
  ///   variable, ``CredentialsErrorCode/emptyValue`` naming the empty one, or what
  ///   ``init(accessKeyID:secretAccessKey:sessionToken:)`` refuses. No message holds a secret.
  public static func fromEnvironment(_ environment: [String: String]) throws(CredentialsError) -> AWSCredentials {
    let accessKeyID = try requiredValue(EnvironmentVariable.accessKeyID, in: environment)
    let secret = try requiredValue(EnvironmentVariable.secretAccessKey, in: environment)
    let token = environment[EnvironmentVariable.sessionToken].flatMap { $0.isEmpty ? nil : $0 }
    do {
      return try AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secret, sessionToken: token)
    } catch {
      throw CredentialsError(error.code, "\(error.message) (from the environment)")
    }
  }

  /// The value of a required variable, refused when unset or blank. Surrounding whitespace is
  /// never trimmed: a key pasted with a trailing space is a different key, and saying so beats a
  /// `SignatureDoesNotMatch` from the server.
  static func requiredValue(_ name: String, in environment: [String: String]) throws(CredentialsError) -> String {
    guard let value = environment[name] else {
      throw CredentialsError(.missingVariable, "\(name) is not set")
    }
    guard !value.allSatisfy(\.isWhitespace) else {
      throw CredentialsError(.emptyValue, "\(name) is set but empty")
    }
    return value
  }

  /// Whether `byte` may appear in an access key id: printable ASCII other than the characters that
  /// delimit the `Credential=` part of an `Authorization` header or a credential scope.
  private static func isAccessKeyIDByte(_ byte: UInt8) -> Bool {
    byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "/") && byte != UInt8(ascii: ",")
      && byte != UInt8(ascii: "=")
  }

  /// The access key id only; the secret and token are shown as redacted.
  public var description: String {
    "AWSCredentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>, sessionToken: "
      + (sessionToken == nil ? "none)" : "<redacted>)")
  }

  /// The same as ``description``.
  public var debugDescription: String { description }

  /// A mirror without the secret, so `dump` and debuggers show what `description` shows.
  public var customMirror: Mirror {
    Mirror(
      self,
      children: [
        "accessKeyID": accessKeyID,
        "secretAccessKey": "<redacted>",
        "sessionToken": sessionToken == nil ? "none" : "<redacted>",
      ])
  }
}

/// The AWS region requests are signed for, read the way the AWS SDKs read it.
public enum AWSRegion {
  /// `AWS_REGION`.
  public static let environmentVariable = "AWS_REGION"

  /// The region in the process environment's `AWS_REGION`; see ``fromEnvironment(_:)``.
  public static func fromEnvironment() throws(CredentialsError) -> String {
    try fromEnvironment(ProcessInfo.processInfo.environment)
  }

  /// The region in `AWS_REGION`.
  ///
  /// - Throws: ``CredentialsError``: ``CredentialsErrorCode/missingVariable`` when unset,
  ///   ``CredentialsErrorCode/emptyValue`` when empty, ``CredentialsErrorCode/invalidValue`` when it
  ///   holds a `/`, whitespace or a control character (it becomes part of the credential scope).
  public static func fromEnvironment(_ environment: [String: String]) throws(CredentialsError) -> String {
    let region = try AWSCredentials.requiredValue(environmentVariable, in: environment)
    guard SigningScope.isScopeComponent(region) else {
      throw CredentialsError(
        .invalidValue,
        "\(environmentVariable) \(region.debugDescription) holds a '/', whitespace or a control character")
    }
    return region
  }
}
