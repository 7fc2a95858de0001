// Public imports: a conformance of a public type to a public protocol is public, and must see
// both declarations publicly.
public import ArgumentParser
public import Capture
public import Journal
public import Settings

// Configuration values as command-line arguments: ArgumentParser parses them with the same
// syntax as the configuration file, so a bad value is refused while the command line is read,
// naming the flag (exit 2), and the command itself only ever sees typed values.

extension ByteCount: ExpressibleByArgument {
  public init?(argument: String) { self.init(parsing: argument) }
  public var defaultValueDescription: String { description }
}

extension ConfiguredDuration: ExpressibleByArgument {
  /// Also refuses durations past 100 years (``DurationText/maximumMilliseconds``), so no flag
  /// can overflow the nanosecond arithmetic of the service.
  public init?(argument: String) { self.init(parsing: argument) }
  public var defaultValueDescription: String { description }
}

extension ListenAddress: ExpressibleByArgument {
  public init?(argument: String) {
    guard let address = try? ListenAddress(parsing: argument) else { return nil }
    self = address
  }
}

extension DurabilityPolicy: ExpressibleByArgument {}

extension CaptureProfile: ExpressibleByArgument {}

/// A listener's address, or `off` for a listener that can be turned off (`--metrics off`).
struct OptionalListenAddress: ExpressibleByArgument {
  /// `nil`: off.
  var address: ListenAddress?

  init?(argument: String) {
    if argument == ListenAddress.off {
      address = nil
    } else {
      guard let address = ListenAddress(argument: argument) else { return nil }
      self.address = address
    }
  }
}
