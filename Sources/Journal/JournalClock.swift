#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

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
    wall: { JournalClock.wallNanos() }, monotonic: { JournalClock.monotonicNanos() })

  /// `CLOCK_REALTIME` in Unix nanoseconds: the one wall clock capture stamps arrivals with.
  public static func wallNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
  }

  /// `CLOCK_MONOTONIC` in nanoseconds from an arbitrary origin: for durations and deadlines.
  public static func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
  }
}
