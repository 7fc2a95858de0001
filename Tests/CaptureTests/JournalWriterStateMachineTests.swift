import Testing

@testable import Journal

/// The journal writer's decisions, driven with plain numbers: no file, no thread, no clock.
@Suite struct JournalWriterStateMachineTests {
  static let second: UInt64 = 1_000_000_000

  func options(
    _ durability: DurabilityPolicy = .groupCommit, syncsAppends: Bool = true,
    configure: (inout JournalOptions) -> Void = { _ in }
  ) -> JournalOptions {
    var options = JournalOptions()
    options.durability = durability
    options.syncsAppends = syncsAppends
    configure(&options)
    return options
  }

  @Test func eachDurabilityPolicyCommitsItsOwnWay() {
    #expect(JournalWriterStateMachine(options: options(.fsyncPerBatch)).commit == .syncEachRequest)
    #expect(JournalWriterStateMachine(options: options(.groupCommit)).commit == .syncEachFile)
    #expect(JournalWriterStateMachine(options: options(.interval)).commit == .syncOnTick)
    // A journal of copies is made durable by its seals, whatever the policy says.
    for policy in DurabilityPolicy.allCases {
      #expect(JournalWriterStateMachine(options: options(policy, syncsAppends: false)).commit == .none)
    }
  }

  @Test func theIntervalPolicySyncsOncePerPeriodAndWhenStopping() {
    var machine = JournalWriterStateMachine(options: options(.interval) { $0.syncIntervalMillis = 200 })
    let ms: UInt64 = 1_000_000
    #expect(machine.tick(now: 1_000 * ms, stopping: false, sealRequested: false) == .syncWrittenFiles)
    #expect(machine.tick(now: 1_100 * ms, stopping: false, sealRequested: false) == [])
    #expect(machine.tick(now: 1_199 * ms, stopping: false, sealRequested: false) == [])
    #expect(machine.tick(now: 1_200 * ms, stopping: false, sealRequested: false) == .syncWrittenFiles)
    // Stopping syncs at once, and rotates every segment.
    #expect(
      machine.tick(now: 1_201 * ms, stopping: true, sealRequested: false) == [.syncWrittenFiles, .rotateEverySegment])
    #expect(machine.lastIntervalSync == 1_201 * ms)
  }

  @Test func policiesThatSyncOnWriteNeverSyncOnTheTick() {
    for durability in [DurabilityPolicy.fsyncPerBatch, .groupCommit] {
      var machine = JournalWriterStateMachine(options: options(durability))
      #expect(machine.tick(now: 10 * Self.second, stopping: false, sealRequested: false) == [])
      #expect(machine.tick(now: 20 * Self.second, stopping: true, sealRequested: false) == .rotateEverySegment)
    }
    var copies = JournalWriterStateMachine(options: options(.interval, syncsAppends: false))
    #expect(copies.tick(now: 10 * Self.second, stopping: true, sealRequested: false) == .rotateEverySegment)
  }

  @Test func aSealRequestRotatesEverySegmentWithRecords() {
    var machine = JournalWriterStateMachine(options: options())
    #expect(machine.tick(now: Self.second, stopping: false, sealRequested: true) == .rotateEverySegment)
    #expect(machine.rotatesAged(records: 3, openedAt: Self.second, now: Self.second, force: true))
    // An empty segment has nothing to seal.
    #expect(!machine.rotatesAged(records: 0, openedAt: 0, now: 1_000 * Self.second, force: true))
  }

  @Test func segmentsRotateBySizeBeforeTheAppendThatWouldPassIt() {
    let machine = JournalWriterStateMachine(options: options { $0.maxSegmentBytes = 1_000 })
    #expect(!machine.rotatesBeforeAppend(records: 5, bytes: 900, incoming: 100))
    #expect(machine.rotatesBeforeAppend(records: 5, bytes: 900, incoming: 101))
    // A record larger than a whole segment still gets a segment: an empty one never rotates.
    #expect(!machine.rotatesBeforeAppend(records: 0, bytes: 40, incoming: 5_000))
  }

  @Test func segmentsRotateByAgeOnTheMonotonicClock() {
    let machine = JournalWriterStateMachine(options: options { $0.maxSegmentAgeSeconds = 60 })
    let opened = 100 * Self.second
    #expect(!machine.rotatesAged(records: 1, openedAt: opened, now: opened + 59 * Self.second, force: false))
    #expect(machine.rotatesAged(records: 1, openedAt: opened, now: opened + 60 * Self.second, force: false))
  }

  @Test func theRingIsPrunedOncePerSecondOnlyWhenItHasABound() {
    var unbounded = JournalWriterStateMachine(options: options())
    #expect(!unbounded.tick(now: 10 * Self.second, stopping: false, sealRequested: false).contains(.pruneRing))
    var bounded = JournalWriterStateMachine(options: options { $0.ringMaxBytes = 1 << 30 })
    #expect(bounded.tick(now: 10 * Self.second, stopping: false, sealRequested: false) == .pruneRing)
    #expect(bounded.tick(now: 10 * Self.second + Self.second / 2, stopping: false, sealRequested: false) == [])
    #expect(bounded.tick(now: 11 * Self.second, stopping: false, sealRequested: false) == .pruneRing)
    var aged = JournalWriterStateMachine(options: options { $0.ringMaxAgeSeconds = 3_600 })
    #expect(aged.tick(now: 10 * Self.second, stopping: false, sealRequested: false) == .pruneRing)
  }

  @Test func idleSegmentsGiveTheirDescriptorBackAfterFiveSeconds() {
    let machine = JournalWriterStateMachine(options: options())
    #expect(!machine.suspendsIdle(lastAppendAt: 10 * Self.second, now: 14 * Self.second))
    #expect(machine.suspendsIdle(lastAppendAt: 10 * Self.second, now: 15 * Self.second))
  }

  @Test func appendsAreHeldBackWhileSealingIsHalfItsBoundBehind() {
    let machine = JournalWriterStateMachine(options: options { $0.maxSealBacklogBytes = 1_000 })
    #expect(!machine.holdsAppendsBack(sealBacklogBytes: 500))
    #expect(machine.holdsAppendsBack(sealBacklogBytes: 501))
  }

  @Test func aFailedSyncCutsOnlyWhatWasNotAcknowledged() {
    for durability in DurabilityPolicy.allCases {
      let machine = JournalWriterStateMachine(options: options(durability))
      #expect(machine.cutsToLastSync(after: .afterWrite))
      #expect(!machine.cutsToLastSync(after: .onTick))
      // `interval` acknowledged after the write: a failed sync before suspending keeps it all.
      #expect(machine.cutsToLastSync(after: .beforeSuspend) == (durability != .interval))
    }
  }

  @Test func aWriteWhoseSyncFailedIsNotAcknowledged() {
    let written: Result<JournalReceipt, JournalError> = .success(JournalReceipt(seq: 7))
    let syncFailed = JournalError(.io, "fdatasync failed")
    #expect((try? JournalWriterStateMachine.acknowledgement(written, syncFailure: nil).get()) == JournalReceipt(seq: 7))
    guard case .failure(let error) = JournalWriterStateMachine.acknowledgement(written, syncFailure: syncFailed) else {
      Issue.record("acknowledged an unsynced write")
      return
    }
    #expect(error.kind == .io && error.message == "fdatasync failed")
    // A write that failed already keeps its own reason.
    let refused: Result<JournalReceipt, JournalError> = .failure(JournalError(.invalidRecord, "not OTLP"))
    guard case .failure(let kept) = JournalWriterStateMachine.acknowledgement(refused, syncFailure: syncFailed) else {
      Issue.record("a failed write became a success")
      return
    }
    #expect(kept.kind == .invalidRecord)
  }

  @Test func outOfRangeDurationsNeverTrap() {
    let huge = JournalWriterStateMachine(
      options: options(.interval) {
        $0.syncIntervalMillis = .max
        $0.maxSegmentAgeSeconds = .max
      })
    #expect(huge.syncIntervalNanos == .max && huge.maxSegmentAgeNanos == .max)
    let negative = JournalWriterStateMachine(options: options { $0.maxSegmentAgeSeconds = -1 })
    #expect(negative.maxSegmentAgeNanos == 0)
  }
}
