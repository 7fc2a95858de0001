public import Manifest
import Synchronization

/// Decompressed segments that deep verification has just checked, kept for replay or export
/// so each blob is read, hashed and decompressed once rather than twice.
///
/// Give ``keep(_:segment:)`` to ``Verify/BundleVerifier/segmentSink`` and this value to
/// ``DeeplyVerifiedBundle/init(_:segments:)``. Segments beyond `budgetBytes` in total are not
/// kept; those blobs are read again from the file (and their SHA-256 checked again) as before.
/// Each segment is handed out once and then forgotten, so memory falls as replay proceeds.
/// The bytes are those the verifier checked, so a bundle file changed after verification
/// cannot change what is sent.
public final class VerifiedSegments: Sendable {
  private struct State {
    var segments: [String: [UInt8]] = [:]
    var bytes = 0
  }

  /// The most segment bytes kept at once.
  public let budgetBytes: Int
  private let state = Mutex(State())

  /// Keeps at most `budgetBytes` of segments.
  public init(budgetBytes: Int) {
    self.budgetBytes = budgetBytes
  }

  /// Keeps `segment`, the checked decompressed content of `blob`, if it fits in the budget.
  public func keep(_ blob: BlobEntry, segment: [UInt8]) {
    state.withLock { state in
      guard segment.count == Int(clamping: blob.uncompressedSize), state.segments[blob.path] == nil,
        state.bytes + segment.count <= budgetBytes
      else { return }
      state.segments[blob.path] = segment
      state.bytes += segment.count
    }
  }

  /// Hands out the kept segment of the blob at `path`, once; `nil` when none was kept.
  func take(_ path: String) -> [UInt8]? {
    state.withLock { state in
      guard let segment = state.segments.removeValue(forKey: path) else { return nil }
      state.bytes -= segment.count
      return segment
    }
  }
}
