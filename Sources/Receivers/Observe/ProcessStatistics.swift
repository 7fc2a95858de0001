import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The process's memory, CPU time and start time as Linux's `/proc` reports them, under the
/// units of the standard `process_*` metrics (bytes, seconds).
public struct ProcessStatistics: Sendable, Equatable {
  public var residentBytes: Int64
  public var virtualBytes: Int64
  /// User plus system CPU time.
  public var cpuSeconds: Double
  /// Unix time the process started at.
  public var startTimeSeconds: Double

  public init(residentBytes: Int64, virtualBytes: Int64, cpuSeconds: Double, startTimeSeconds: Double) {
    self.residentBytes = residentBytes
    self.virtualBytes = virtualBytes
    self.cpuSeconds = cpuSeconds
    self.startTimeSeconds = startTimeSeconds
  }

  /// This process's statistics; `nil` where `/proc` cannot be read (not Linux).
  public static func current() -> ProcessStatistics? {
    guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
      let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8)
    else { return nil }
    let bootTime = system.split(separator: "\n").first { $0.hasPrefix("btime ") }
      .flatMap { Double($0.dropFirst("btime ".count).trimmingCharacters(in: .whitespaces)) }
    return parse(
      stat: stat, bootTimeSeconds: bootTime ?? 0, clockTicksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))),
      pageSize: Int64(sysconf(Int32(_SC_PAGESIZE))))
  }

  /// Reads a `/proc/PID/stat` line (proc(5)): fields after the command name, which is in
  /// parentheses and may itself hold spaces and parentheses, so it is skipped up to the last `)`.
  static func parse(stat: String, bootTimeSeconds: Double, clockTicksPerSecond: Double, pageSize: Int64)
    -> ProcessStatistics?
  {
    guard let close = stat.lastIndex(of: ")"), clockTicksPerSecond > 0 else { return nil }
    // Index 0 is field 3 (state); field N is at N - 3.
    let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
    func field(_ number: Int) -> Double? {
      let index = number - 3
      return fields.indices.contains(index) ? Double(fields[index]) : nil
    }
    guard let userTicks = field(14), let systemTicks = field(15), let startTicks = field(22),
      let virtualBytes = field(23), let residentPages = field(24)
    else { return nil }
    return ProcessStatistics(
      residentBytes: Int64(residentPages) * pageSize, virtualBytes: Int64(virtualBytes),
      cpuSeconds: (userTicks + systemTicks) / clockTicksPerSecond,
      startTimeSeconds: bootTimeSeconds + startTicks / clockTicksPerSecond)
  }
}
