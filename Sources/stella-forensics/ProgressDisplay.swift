import Foundation
import Verify

/// A one-line progress display on standard error, shown only when standard error is a terminal
/// (scripts and CI logs stay quiet).
final class ProgressDisplay: @unchecked Sendable {
  // @unchecked: all state is guarded by `lock`.
  private let lock = NSLock()
  private let label: String
  private let start = Date()
  private var lastDraw = Date.distantPast
  private var drewAnything = false

  /// A display for `label`, or `nil` when standard error is not a terminal.
  static func ifTerminal(_ label: String) -> ProgressDisplay? {
    isatty(STDERR_FILENO) != 0 ? ProgressDisplay(label: label) : nil
  }

  private init(label: String) { self.label = label }

  func update(_ progress: VerificationProgress) {
    lock.lock()
    defer { lock.unlock() }
    let now = Date()
    guard now.timeIntervalSince(lastDraw) >= 0.1 || progress.blobsDone == progress.blobCount else { return }
    lastDraw = now
    drewAnything = true
    let elapsed = max(now.timeIntervalSince(start), 0.001)
    let rate = Double(progress.bytesDone) / elapsed
    let fraction = progress.byteCount == 0 ? 1 : Double(progress.bytesDone) / Double(progress.byteCount)
    let remaining = rate > 0 ? Double(progress.byteCount - progress.bytesDone) / rate : 0
    let line = String(
      format: "\r%@ %3.0f%%  %d/%d blobs  %.1f MB/s  ETA %.0fs ", label, fraction * 100, progress.blobsDone,
      progress.blobCount, rate / 1e6, remaining)
    FileHandle.standardError.write(Data(line.utf8))
  }

  /// Clears the line so the final result prints cleanly.
  func finish() {
    lock.lock()
    defer { lock.unlock() }
    if drewAnything { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}
