/// The one error convention of the package's modules, after grpc-swift-2's `RPCError`: a stable
/// code saying what kind of failure it is (callers switch on it, and it never changes meaning), a
/// message with the context a user needs (the path, the name, the offset), and the underlying
/// error that caused it, when there is one.
///
/// A module names its errors with a type alias over its own code enum, so the code's cases stay
/// documented where the failures happen:
///
/// ```swift
/// public enum JournalErrorCode: Sendable, Hashable { case locked, io }
/// public typealias JournalError = CodedError<JournalErrorCode>
/// ```
public struct CodedError<Code: Sendable & Hashable>: Error, CustomStringConvertible {
  /// What kind of failure this is.
  public var code: Code
  /// One line for a person: what failed, where, and why.
  public var message: String
  /// The error this one wraps (an operating-system, codec or parser error), kept for callers and
  /// logs that want more than the message.
  public var cause: (any Error)?

  public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  /// The message: what the CLI prints and the logs show.
  public var description: String { message }

  /// The code under the name the journal's and incidents' callers have always used.
  public typealias Kind = Code

  /// ``code`` under the name the journal's and incidents' callers have always used.
  public var kind: Code { code }
}
