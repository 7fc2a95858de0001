/// The one error type of the `Signing` module.
///
/// Callers branch on ``code``; ``description`` is the one-line text for humans and names the file
/// (when there is one) before saying what is wrong with it, for example
/// `/keys/k.key: private key file is readable by group or others (mode 0644); chmod 600 it`.
public struct SigningError: Error, CustomStringConvertible, Equatable, Sendable {
  /// What kind of failure this is. New codes may be added; match on the ones you handle.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    // A struct over a private enum so codes can be added without breaking exhaustive switches.
    private enum Wrapped: String, Hashable, Sendable {
      case keyFileUnreadable
      case keyFileInsecurePermissions
      case keyFormat
      case notEd25519
      case fileExists
      case invalidKeyName
      case io
    }

    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// A key file could not be opened or read (missing, no permission, not a regular file).
    public static let keyFileUnreadable = Code(.keyFileUnreadable)
    /// A private key file grants any permission to group or others.
    public static let keyFileInsecurePermissions = Code(.keyFileInsecurePermissions)
    /// The key text or bytes are not the expected PEM/DER structure.
    public static let keyFormat = Code(.keyFormat)
    /// The key is a well-formed key of another algorithm (RSA, EC, X25519, …).
    public static let notEd25519 = Code(.notEd25519)
    /// A file that would be written already exists; nothing was written.
    public static let fileExists = Code(.fileExists)
    /// A key pair name is empty, contains `/`, or starts with `.`.
    public static let invalidKeyName = Code(.invalidKeyName)
    /// Creating or writing a file or directory failed.
    public static let io = Code(.io)

    public var description: String { wrapped.rawValue }
  }

  /// The kind of failure.
  public var code: Code
  /// Why it failed, without the path.
  public var message: String
  /// The file (or key source) concerned, if any.
  public var path: String?

  /// Creates an error; `path` is put in front of `message` by ``description``.
  public init(_ code: Code, _ message: String, path: String? = nil) {
    self.code = code
    self.message = message
    self.path = path
  }

  /// `path: message`, or just `message` when there is no path.
  public var description: String {
    if let path { return "\(path): \(message)" }
    return message
  }
}
