import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The process's file descriptor budget: every connection, segment file and sealed file costs
/// one, so the service raises its limit at start and reports not-ready before running out
/// (an `accept` failing with `EMFILE` would otherwise spin and starve every listener).
public enum ProcessResources {
  /// Descriptors kept free for the journal, sealing, the admin API and the runtime, on top of
  /// the connection budget.
  public static let reservedDescriptors = 256

  /// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit in force.
  @discardableResult
  public static func raiseDescriptorLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
    if limit.rlim_cur < limit.rlim_max {
      var raised = limit
      raised.rlim_cur = limit.rlim_max
      if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
    }
    return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
  }

  /// Makes glibc's allocator give large buffers back to the system as soon as they are freed.
  ///
  /// Request bodies, gRPC messages and batch buffers are megabytes each and short-lived. By
  /// default glibc raises its mmap threshold to the size of each large block freed, so later
  /// blocks of that size come from the heap arenas (one per thread that allocated), where freed
  /// memory stays resident and other threads cannot reuse it: peak RSS then grows far past what
  /// is ever in use at once. A fixed threshold keeps blocks of 128 KiB and more in their own
  /// mappings, unmapped on free, and two arenas (one per core of the machines this is sized
  /// for) bound the rest: measured under the benchmark's overload, two arenas peak about 3 MiB
  /// below four.
  public static func tuneAllocator() {
    // <malloc.h> is not part of Swift's Glibc module, so mallopt is looked up at run time; the
    // option numbers are glibc's stable ABI (M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3,
    // M_ARENA_MAX -8). Without glibc's mallopt nothing changes.
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    _ = mallopt(-3, 128 << 10)
    _ = mallopt(-1, 1 << 20)
    _ = mallopt(-8, 2)
  }

  /// The soft `RLIMIT_NOFILE` in force.
  public static var descriptorLimit: Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
    return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
  }

  /// Descriptors open now (entries of `/proc/self/fd`), `nil` where that cannot be read.
  public static func openDescriptors() -> Int? {
    guard let directory = opendir("/proc/self/fd") else { return nil }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
      let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
        name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0))
      }
      if !isDot { count += 1 }
    }
    // The directory stream itself holds one while counting.
    return max(0, count - 1)
  }
}
