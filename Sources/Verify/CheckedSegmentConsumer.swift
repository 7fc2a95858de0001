public import Manifest

/// Takes each segment deep verification has checked, while the verifier still holds its bytes,
/// so a command that writes every record (export) needs neither a second decompression nor a
/// copy of the whole bundle in memory.
///
/// Contract, which makes waiting for a turn inside ``consume(_:segment:)`` safe:
/// - ``blobOrder(for:)`` is called once, after steps 1–6 passed (the manifest is signed by
///   trusted keys), before any blob is checked;
/// - blobs are then started in that order (by one or more threads), and every blob of the
///   manifest gets exactly one call: ``consume(_:segment:)`` if it passed step 7, ``pass(_:)``
///   if it failed or was not checked because an earlier one had failed;
/// - so a blob's predecessors in the order have all been started before it.
///
/// A consumed segment belongs to a bundle that a later blob may still reject: write it only
/// where nothing treats it as evidence until the verifier's result is `.verified`.
///
/// Consumers are fed only when the bundle can be read from several threads at once (a bundle
/// file); for other byte sources every blob is passed.
public protocol CheckedSegmentConsumer: AnyObject, Sendable {
  /// The manifest's blobs in the order the consumer wants them; blobs it leaves out are checked
  /// after the others.
  func blobOrder(for manifest: BundleManifest) -> [BlobEntry]
  /// `segment` (the decompressed content of `blob`) passed every check of step 7. The bytes are
  /// valid only during the call. Called from the verifier's threads, at once for different blobs.
  func consume(_ blob: BlobEntry, segment: UnsafeRawBufferPointer)
  /// `blob` will not be consumed: it failed, or it was not checked after an earlier failure.
  func pass(_ blob: BlobEntry)
}
