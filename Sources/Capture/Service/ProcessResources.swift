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
