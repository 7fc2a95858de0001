/// Where the journal reads time, so tests can drive ring ages and segment rotation without
/// sleeping.
///
/// `wall` (unix nanoseconds) is what the ring compares arrival times against: arrival times are
/// wall-clock facts recorded in every record, so their age can only be judged on the same clock.
/// `monotonic` (nanoseconds from an arbitrary origin) times everything that must not jump when
/// the wall clock is set: segment age rotation, the `interval` sync period, the prune tick and
/// the free-space re-read.
public struct JournalClock: Sendable {
  public var wall: @Sendable () -> UInt64
  public var monotonic: @Sendable () -> UInt64

  public init(wall: @escaping @Sendable () -> UInt64, monotonic: @escaping @Sendable () -> UInt64) {
    self.wall = wall
    self.monotonic = monotonic
  }

  /// `CLOCK_REALTIME` and `CLOCK_MONOTONIC`, as the journal read them before it had a clock.
  public static let system = JournalClock(
    wall: { CapturePipeline.wallClockNanos() }, monotonic: { Journal.monotonicNanos() })
}
