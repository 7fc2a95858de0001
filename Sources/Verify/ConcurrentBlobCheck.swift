import Dispatch
import EvidenceIO
import Manifest
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Deep step 7 over several blobs at once, one blob per thread, with the outcome the sequential
/// check would give.
///
/// Why: a deep check is CPU-bound per blob (SHA-256, decompression, the record walk) and blobs
/// are independent, so on a machine with more than one core the blobs of a bundle are checked
/// side by side. The result does not depend on the schedule:
/// - the finding is the one of the first failing blob in manifest order (a blob after a known
///   failure is not started; every blob before it is checked to the end), although blobs are
///   started largest first;
/// - blob facts (audit records, receive times) are merged in manifest order afterwards, so the
///   receive-time budget runs out at the same blob as in a sequential check.
/// Memory: up to `workers` blobs (compressed and decompressed) are held at once instead of one.
///
/// With a ``CheckedSegmentConsumer``, blobs are started in the consumer's order instead, and
/// every blob gets its one consume or pass call (the consumer's contract).
enum ConcurrentBlobCheck {
  /// Threads worth using: the online CPUs, at most `blobs`, at most 8.
  static func workers(blobs: Int) -> Int {
    let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    return max(1, min(blobs, min(online, 8)))
  }

  /// Examines `work[i]` for every `i` on `workers` threads. `checked` gets the running totals
  /// (blobs, compressed bytes) after each blob examined, one call at a time. Returns one result
  /// per blob; `nil` for a blob not examined because an earlier one had already failed.
  static func examine<Source: ConcurrentByteSource>(
    _ work: [(entry: BlobEntry, member: TarMember, keepsReceiveTimes: Bool)], source: Source,
    limits: VerificationLimits, workers: Int, segmentSink: (@Sendable (BlobEntry, [UInt8]) -> Void)?,
    consumer: (any CheckedSegmentConsumer)? = nil, preferredOrder: [BlobEntry]? = nil,
    checked: @Sendable (_ blobs: Int, _ bytes: UInt64) -> Void
  ) -> [Result<CheckedBlobFacts, any Error>?] {
    let checker = BlobChecker(
      source: source, limits: limits, depth: .deep, segmentSink: segmentSink, segmentConsumer: consumer)
    let next = Atomic<Int>(0)
    let firstFailure = Atomic<Int>(Int.max)
    let state = Mutex(
      (results: [Result<CheckedBlobFacts, any Error>?](repeating: nil, count: work.count), blobs: 0, bytes: UInt64(0)))
    // Largest blobs first, so the threads finish together instead of one waiting on a big blob
    // started last; results still go by manifest position.
    let schedule: [Int]
    if let preferredOrder {
      schedule = Self.schedule(work, following: preferredOrder)
    } else {
      schedule = work.indices.sorted { (left: Int, right: Int) -> Bool in
        let leftSize = work[left].entry.size
        let rightSize = work[right].entry.size
        return leftSize > rightSize || (leftSize == rightSize && left < right)
      }
    }
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
      let scratch = BlobScratch()
      while true {
        let position = next.wrappingAdd(1, ordering: .relaxed).oldValue
        guard position < schedule.count else { return }
        let index = schedule[position]
        // A blob after a known failure (in manifest order) is not started.
        guard index < firstFailure.load(ordering: .acquiring) else {
          consumer?.pass(work[index].entry)
          continue
        }
        let item = work[index]
        let result = Result { () throws -> CheckedBlobFacts in
          try checker.examine(
            item.entry, member: item.member, keepsReceiveTimes: item.keepsReceiveTimes, scratch: scratch)
        }
        if case .failure = result {
          consumer?.pass(item.entry)
          // Lower the mark to this blob unless an earlier one failed already.
          var current = firstFailure.load(ordering: .relaxed)
          while index < current {
            let (exchanged, original) = firstFailure.compareExchange(
              expected: current, desired: index, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
          }
        }
        state.withLock { state in
          state.results[index] = result
          state.blobs += 1
          state.bytes += item.entry.size
          checked(state.blobs, state.bytes)
        }
      }
    }
    return state.withLock { $0.results }
  }

  /// Work positions in the order of `preferred` (by blob path), then those it leaves out in
  /// manifest order.
  static func schedule(
    _ work: [(entry: BlobEntry, member: TarMember, keepsReceiveTimes: Bool)], following preferred: [BlobEntry]
  ) -> [Int] {
    var positionOfPath: [String: Int] = [:]
    for (index, item) in work.enumerated() { positionOfPath[item.entry.path] = index }
    var scheduled = Set<Int>()
    var schedule: [Int] = []
    for entry in preferred {
      guard let index = positionOfPath[entry.path], scheduled.insert(index).inserted else { continue }
      schedule.append(index)
    }
    schedule += work.indices.filter { !scheduled.contains($0) }
    return schedule
  }
}

/// A byte source that several threads may read at once (positioned reads, no shared offset),
/// which deep verification then checks blob by blob in parallel.
protocol ConcurrentByteSource: ByteSource, Sendable {}

extension FileByteSource: ConcurrentByteSource {}
