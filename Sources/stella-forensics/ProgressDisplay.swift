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
    update(
      bytesDone: progress.bytesDone, bytesTotal: progress.byteCount,
      detail: "\(progress.blobsDone)/\(progress.blobCount) blobs")
  }

  /// Redraws (at most ten times a second) with the share done, the rate and the time left.
  func update(bytesDone: UInt64, bytesTotal: UInt64, detail: String) {
    lock.lock()
    defer { lock.unlock() }
    let now = Date()
    guard now.timeIntervalSince(lastDraw) >= 0.1 || bytesDone >= bytesTotal else { return }
    lastDraw = now
    drewAnything = true
    let elapsed = max(now.timeIntervalSince(start), 0.001)
    let rate = Double(bytesDone) / elapsed
    let fraction = bytesTotal == 0 ? 1 : Double(bytesDone) / Double(bytesTotal)
    let remaining = rate > 0 ? Double(bytesTotal &- min(bytesDone, bytesTotal)) / rate : 0
    let line = String(
      format: "\r%@ %3.0f%%  %@  %.1f MB/s  ETA %.0fs\u{1B}[K", label, fraction * 100, detail, rate / 1e6, remaining)
    FileHandle.standardError.write(Data(line.utf8))
  }

  /// Clears the line so the final result prints cleanly.
  func finish() {
    lock.lock()
    defer { lock.unlock() }
    if drewAnything { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}

extension BundleVerifier {
  /// Verifies the bundle at `path` with a progress line on a terminal (none when `quiet`, for
  /// `--json`); a bundle that cannot be read at all is a usage error (exit 2).
  func verifyShowingProgress(path: String, quiet: Bool = false) throws(CLIFailure) -> VerificationResult {
    var verifier = self
    let display = quiet ? nil : ProgressDisplay.ifTerminal("verifying")
    if let display { verifier.progress = { @Sendable progress in display.update(progress) } }
    defer { display?.finish() }
    do {
      return try verifier.verify(path: path)
    } catch {
      throw .usage(error.description)
    }
  }
}
