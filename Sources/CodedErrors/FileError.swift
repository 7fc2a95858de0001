#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The error convention for a failure on one file: ``CodedError``'s code and message, with the
/// path the message is about and, when the operating system reported it, the `errno` (the
/// cause), so callers can tell a full disk from a permission problem without parsing text.
public struct FileError<Code: Sendable & Hashable>: Error, CustomStringConvertible {
  /// What kind of failure this is.
  public var code: Code
  /// The file or directory.
  public var path: String
  /// What failed on it, and why.
  public var message: String
  /// The operating system's error number, for failures it reported.
  public var osError: Int32?

  public init(_ code: Code, path: String, _ message: String, osError: Int32? = nil) {
    self.code = code
    self.path = path
    self.message = message
    self.osError = osError
  }

  /// `PATH: MESSAGE`.
  public var description: String { "\(path): \(message)" }

  /// The failure the operating system's `errno` describes now: `what` failed on `path`, with the
  /// system's own words for why.
  public static func system(_ code: Code, path: String, _ what: String) -> FileError {
    let number = errno
    return FileError(code, path: path, "\(what): \(String(cString: strerror(number)))", osError: number)
  }

  /// Whether the operating system said the disk or the quota is full.
  public var isNoSpace: Bool { osError == ENOSPC || osError == EDQUOT }

  /// The code under the name the journal's and evidence files' callers have always used.
  public typealias Kind = Code

  /// ``code`` under the name the journal's and evidence files' callers have always used.
  public var kind: Code { code }
}
