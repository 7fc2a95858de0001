import Dispatch
import EvidenceIO
public import Manifest
import Synchronization
public import Verify

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An export written while deep verification runs, and published only with its result.
///
/// Give it to ``Verify/BundleVerifier/segmentConsumer``. When the verifier's result is
/// `.verified`, ``publish(_:)`` takes the ``DeeplyVerifiedBundle`` made from it; otherwise
/// ``abandon()``. Until then the files exist only under temporary names (`.NAME.partial`), so a
/// rejected bundle leaves no export behind, and what is published is exactly what the
/// verification checked.
///
/// Why: writing after verification meant keeping every decompressed segment (or decompressing
/// twice) and doing the writing after the checking. Here each segment is written from the
/// verifier's own buffer by the thread that checked it; the blobs of one file take turns in
/// file order, so the files are byte-identical to ``BundleExport/run(bundle:format:directory:replacing:)``'s.
public final class StagedExport: CheckedSegmentConsumer, @unchecked Sendable {
  // @unchecked: a file's writer is used only by the thread holding that file's turn (turns are
  // handed over through semaphores, which order memory); everything else is behind `state`.

  /// Where each blob goes: its file, and its place among that file's blobs.
  private struct Turn {
    var group: Int
    var position: Int
  }

  // @unchecked: see the class; the writers are the only non-Sendable part.
  private struct Setup: @unchecked Sendable {
    var manifest: BundleManifest
    var writers: [BundleExport.GroupWriter]
    var turns: [String: Turn]
    /// Per file, one per blob: signalled when the blob before it is done.
    var ready: [[DispatchSemaphore]]
    var blobCount: Int
  }

  private struct State {
    var setup: Setup?
    var failure: ReplayError?
    var written = 0
    /// Directories this export made, deepest first.
    var madeDirectories: [String] = []
  }

  private let bundlePath: String
  private let format: ExportFormat
  private let directory: String
  private let replacing: Bool
  private let state = Mutex(State())

  /// An export of the bundle at `bundle` (named in errors) into `directory`, with the rules of
  /// ``BundleExport/run(bundle:format:directory:replacing:)``.
  public init(bundle: String, format: ExportFormat, directory: String, replacing: Bool = false) {
    bundlePath = bundle
    self.format = format
    self.directory = directory
    self.replacing = replacing
  }

  public func blobOrder(for manifest: BundleManifest) -> [BlobEntry] {
    let plan = BundleExport.ExportPlan(streams: DeeplyVerifiedBundle.streams(of: manifest), format: format)
    var missing: [String] = []
    var ancestor = EvidenceFiles.trimmingTrailingSlashes(directory)
    while !ancestor.isEmpty, ancestor != "/", ancestor != ".", !EvidenceFiles.exists(ancestor) {
      missing.append(ancestor)
      ancestor = EvidenceFiles.parentDirectory(of: ancestor)
    }
    do throws(ReplayError) {
      try plan.prepare(directory: directory, replacing: replacing)
      state.withLock { [missing] in $0.madeDirectories = missing }
      var writers: [BundleExport.GroupWriter] = []
      for group in plan.groups {
        writers.append(try BundleExport.GroupWriter(group, format: format, directory: directory, replacing: replacing))
      }
      // The files are interleaved by how far into its file each blob starts, so the verifier's
      // threads mostly hold blobs of different files and seldom wait for a turn.
      var queue: [(start: UInt64, group: Int, blob: BlobEntry)] = []
      var turns: [String: Turn] = [:]
      var ready: [[DispatchSemaphore]] = []
      for (group, streams) in plan.streamsOfGroup.enumerated() {
        let blobs = streams.flatMap(\.1)
        var start: UInt64 = 0
        for (position, blob) in blobs.enumerated() {
          turns[blob.path] = Turn(group: group, position: position)
          queue.append((start, group, blob))
          start &+= blob.uncompressedSize
        }
        // Made at 0 and signalled, never made at 1: a semaphore freed below its starting value
        // is a libdispatch crash.
        let semaphores = blobs.map { _ in DispatchSemaphore(value: 0) }
        semaphores.first?.signal()
        ready.append(semaphores)
      }
      // Within a file, starts grow with the position, so the file order is kept.
      queue.sort { ($0.start, $0.group) < ($1.start, $1.group) }
      let setup = Setup(manifest: manifest, writers: writers, turns: turns, ready: ready, blobCount: queue.count)
      state.withLock { $0.setup = setup }
      return queue.map(\.blob)
    } catch {
      state.withLock { $0.failure = $0.failure ?? error }
      return []
    }
  }

  public func consume(_ blob: BlobEntry, segment: UnsafeRawBufferPointer) {
    takeTurn(blob) { writer throws(ReplayError) in
      let records = try ArchivedRecordReader.locateRecords(in: segment, blob: blob, bundlePath: bundlePath)
      try writer.append(segment, records: records, of: blob)
    }
  }

  public func pass(_ blob: BlobEntry) {
    takeTurn(blob) { _ throws(ReplayError) in
      throw ReplayError(.outputFailed, "\(blob.path) was not handed over by the verification")
    }
  }

  /// Waits for `blob`'s turn in its file, runs `work` with the file's writer unless the export
  /// has already failed, and hands the turn to the next blob of the file.
  private func takeTurn(_ blob: BlobEntry, _ work: (BundleExport.GroupWriter) throws(ReplayError) -> Void) {
    guard let setup = state.withLock({ $0.setup }), let turn = setup.turns[blob.path] else { return }
    let semaphores = setup.ready[turn.group]
    semaphores[turn.position].wait()
    defer {
      if turn.position + 1 < semaphores.count { semaphores[turn.position + 1].signal() }
    }
    guard state.withLock({ $0.failure == nil }) else { return }
    do {
      try work(setup.writers[turn.group])
      state.withLock { $0.written += 1 }
    } catch {
      state.withLock { $0.failure = $0.failure ?? error }
    }
  }

  /// Moves the files into place and writes `index.json`, for the bundle whose verification fed
  /// this export.
  /// - Throws: ``ReplayError`` for a bundle other than the one staged (`.outputFailed`), the
  ///   first write failure (`.outputFailed`, `.outputExists`, or a record's encoding error with
  ///   its stream and seq), or a verification that did not hand over every segment.
  public func publish(_ bundle: DeeplyVerifiedBundle) throws(ReplayError) -> ExportReport {
    let (setup, failure, written) = state.withLock { ($0.setup, $0.failure, $0.written) }
    if let failure { throw failure }
    guard let setup, setup.manifest == bundle.manifest else {
      throw ReplayError(.outputFailed, "\(bundle.path): this export was staged for a different bundle")
    }
    guard written == setup.blobCount else {
      throw ReplayError(
        .outputFailed, "\(bundle.path): the verification handed over \(written) of \(setup.blobCount) segments")
    }
    var groups: [BundleExport.WrittenGroup] = []
    for writer in setup.writers { groups.append(try writer.commit()) }
    state.withLock { $0.setup = nil }
    return try BundleExport.finish(groups, bundle: bundle, format: format, directory: directory, replacing: replacing)
  }

  /// Removes the temporary files, and the directories this export made if they are empty.
  /// Call it when verification rejected the bundle or ``publish(_:)`` failed.
  public func abandon() {
    let madeDirectories = state.withLock { state in
      // Dropping the writers closes and unlinks their temporary files.
      state.setup = nil
      return state.madeDirectories
    }
    // rmdir removes only empty directories: a published file keeps its directory.
    for made in madeDirectories { rmdir(made) }
  }
}
