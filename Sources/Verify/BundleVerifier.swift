public import EvidenceIO
import Keys
public import Manifest

/// How far verification goes (BUNDLE-FORMAT.md §9).
public enum VerificationDepth: Sendable {
  /// Steps 1–7.1: structure, signatures, manifest, and every blob's size and digest.
  case quick
  /// All of §9: also decompresses every segment and checks framing, sequences, counts and times.
  case deep
}

/// The offline verifier of BUNDLE-FORMAT.md §9. It needs only the bundle and trusted keys.
///
/// The first failing check decides the result, in the order the format fixes, so every
/// rejection carries exactly one stable reason code.
public struct BundleVerifier: Sendable {
  public let policy: TrustPolicy
  public let depth: VerificationDepth
  public let limits: VerificationLimits
  /// Called after each blob is checked, for progress displays.
  public var progress: (@Sendable (VerificationProgress) -> Void)?
  /// How many records' `receivedUnixNano` deep verification may keep for
  /// ``VerifiedBundle/receiveTimes`` (8 bytes each). 0, the default, keeps none; a bundle with
  /// more records than this keeps none either, so memory stays bounded whatever the bundle.
  public var receiveTimeLimit = 0
  /// Deep mode: called with each blob's decompressed segment once it passed every check of
  /// step 7 (from any thread, possibly out of manifest order). Replay and export keep these
  /// bytes so they need not read, hash and decompress the blob a second time. A segment handed
  /// over belongs to a bundle that may still be rejected by a later blob; use it only when the
  /// result is `.verified`.
  public var segmentSink: (@Sendable (_ blob: BlobEntry, _ segment: [UInt8]) -> Void)?
  /// Deep mode: gets each checked segment in the order it asks for, without a copy (see
  /// ``CheckedSegmentConsumer``).
  public var segmentConsumer: (any CheckedSegmentConsumer)?

  public init(policy: TrustPolicy, depth: VerificationDepth = .quick, limits: VerificationLimits = .init()) {
    self.policy = policy
    self.depth = depth
    self.limits = limits
  }

  /// Verifies the bundle at `path`.
  /// - Throws: ``BundleIOError`` only when the file cannot be read at all; every problem with
  ///   its content is a ``VerificationResult/rejected(_:)``.
  public func verify(path: String) throws(BundleIOError) -> VerificationResult {
    let source = try FileByteSource(path: path)
    return try verify(source: source, path: path)
  }

  /// Verifies a bundle held by `source`; `path` names it in the result.
  public func verify(source: some ByteSource, path: String) throws(BundleIOError) -> VerificationResult {
    let check = BundleCheck(
      source: source, limits: limits, depth: depth, progress: progress, receiveTimeLimit: receiveTimeLimit,
      segmentSink: segmentSink, segmentConsumer: depth == .deep ? segmentConsumer : nil)
    switch try check.run(trust: policy) {
    case .success(let checked):
      return .verified(
        VerifiedBundle(
          path: path, manifest: checked.manifest, manifestBytes: checked.manifestBytes,
          signerKeyIDs: checked.signerKeyIDs, isDeep: depth == .deep, blobMembers: checked.blobMembers,
          envelopeKeyIDs: checked.envelopeSignatures.map(\.keyID),
          custodyTimeline: depth == .deep ? checked.custodyTimeline : nil, receiveTimes: checked.receiveTimes))
    case .failure(let finding):
      return .rejected(finding)
    }
  }
}

/// How far blob checking has come.
public struct VerificationProgress: Sendable {
  public var blobsDone: Int
  public var blobCount: Int
  /// Compressed blob bytes checked so far.
  public var bytesDone: UInt64
  public var byteCount: UInt64
}

/// What a successful check established.
struct CheckedBundle {
  var manifest: BundleManifest
  var manifestBytes: [UInt8]
  var envelopeSignatures: [DSSESignature]
  var signerKeyIDs: [String]
  var members: [TarMember]
  var blobMembers: [String: TarMember]
  /// The audit records kept for the chain check (deep mode; empty in quick mode).
  var custodyTimeline: [CustodyEvent]
  var receiveTimes: [StreamKey: [UInt64]]?
}

/// One run of the §9 algorithm over one source.
struct BundleCheck<Source: ByteSource> {
  let source: Source
  let limits: VerificationLimits
  let depth: VerificationDepth
  var progress: (@Sendable (VerificationProgress) -> Void)? = nil
  var receiveTimeLimit = 0
  var segmentSink: (@Sendable (BlobEntry, [UInt8]) -> Void)? = nil
  var segmentConsumer: (any CheckedSegmentConsumer)? = nil

  /// Runs every step. `trust == nil` skips step 4 (signature trust); only the co-signer does
  /// that, to check integrity before adding its own signature, and it never yields a
  /// ``VerifiedBundle``.
  func run(trust: TrustPolicy?) throws(BundleIOError) -> Result<CheckedBundle, Finding> {
    do {
      return .success(try runSteps(trust: trust))
    } catch let error as Finding {
      return .failure(error)
    } catch let error as BundleIOError {
      throw error
    } catch {
      // Every step throws a Finding or a BundleIOError; anything else is reported as a read
      // failure rather than dressed up as a reason code.
      throw BundleIOError(path: "bundle", message: "unexpected error: \(error)")
    }
  }

  private func runSteps(trust: TrustPolicy?) throws -> CheckedBundle {
    // Step 1: every tar header.
    let members = try TarStructureChecker(limits: limits).members(of: source)
    let byName = Dictionary(members.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

    // Step 2.
    guard let manifestMember = byName[BundleTar.manifestName] else {
      throw Finding(.missingMember, "manifest.json is not in the archive")
    }
    guard let envelopeMember = byName[BundleTar.envelopeName] else {
      throw Finding(.missingMember, "manifest.dsse.json is not in the archive")
    }
    let manifestBytes = try source.bytes(at: manifestMember.dataOffset, count: manifestMember.size)
    let envelopeBytes = try source.bytes(at: envelopeMember.dataOffset, count: envelopeMember.size)

    // Step 3.
    let signatures = try EnvelopeReader.read(envelopeBytes, manifestBytes: manifestBytes, limits: limits)

    // Step 4.
    var signers: [String] = []
    if let trust {
      signers = try SignatureCheck.trustedSigners(
        signatures, payloadType: DSSE.manifestPayloadType, payload: manifestBytes, trust: trust)
    }

    // Step 5.
    let manifest = try ManifestChecks.authenticatedManifest(manifestBytes)

    // Step 6.
    let blobMembers = try checkMemberSet(members, byName: byName, manifest: manifest)

    // Step 7.
    var blobChecker = BlobChecker(
      source: source, limits: limits, depth: depth, receiveTimeLimit: receiveTimeLimit, segmentSink: segmentSink)
    var done = VerificationProgress(
      blobsDone: 0, blobCount: manifest.blobs.count, bytesDone: 0,
      byteCount: manifest.blobs.reduce(0) { $0 + $1.size })
    let work = manifest.blobs.compactMap { entry in
      blobMembers[entry.path].map { member in
        (entry: entry, member: member, keepsReceiveTimes: blobChecker.mayKeepReceiveTimes(entry))
      }
    }
    let workers = depth == .deep ? ConcurrentBlobCheck.workers(blobs: work.count) : 1
    let shared = source as? any ConcurrentByteSource
    if let consumer = segmentConsumer, shared == nil {
      // Feeding a consumer in its order needs the threaded check (see CheckedSegmentConsumer);
      // every blob is passed, in the consumer's order, as its contract says.
      let order = ConcurrentBlobCheck.schedule(work, following: consumer.blobOrder(for: manifest))
      for index in order { consumer.pass(work[index].entry) }
    }
    if let shared, workers > 1 || segmentConsumer != nil {
      // Deep checks are CPU-bound and blobs independent: several at once, same outcome.
      let progress = self.progress
      let counted = done
      let consumer = segmentConsumer
      let results = ConcurrentBlobCheck.examine(
        work, source: shared, limits: limits, workers: workers, segmentSink: segmentSink,
        consumer: consumer, preferredOrder: consumer?.blobOrder(for: manifest)
      ) {
        blobs, bytes in
        var now = counted
        now.blobsDone = blobs
        now.bytesDone = bytes
        progress?(now)
      }
      let scratch = BlobScratch()
      for (index, item) in work.enumerated() {
        // `nil` only after a failed blob, whose finding is thrown first.
        guard let result = results[index] else {
          try blobChecker.check(item.entry, member: item.member, scratch: scratch)
          continue
        }
        blobChecker.merge(try result.get(), of: item.entry)
      }
    } else {
      let scratch = BlobScratch()
      for item in work {
        try blobChecker.check(item.entry, member: item.member, scratch: scratch)
        done.blobsDone += 1
        done.bytesDone += item.entry.size
        progress?(done)
      }
    }
    // After step 7 (not a BUNDLE-FORMAT.md step): the reserved audit stream's hash chain.
    try blobChecker.checkAuditChains()

    return CheckedBundle(
      manifest: manifest, manifestBytes: manifestBytes, envelopeSignatures: signatures, signerKeyIDs: signers,
      members: members, blobMembers: blobMembers, custodyTimeline: blobChecker.custodyTimeline(),
      receiveTimes: blobChecker.receiveTimes)
  }

  private func checkMemberSet(_ members: [TarMember], byName: [String: TarMember], manifest: BundleManifest)
    throws(Finding) -> [String: TarMember]
  {
    var blobMembers: [String: TarMember] = [:]
    for entry in manifest.blobs {
      guard let member = byName[entry.path] else {
        throw Finding(.missingMember, "\(entry.path) is listed in the manifest but not in the archive")
      }
      blobMembers[entry.path] = member
    }
    for member in members
    where member.name != BundleTar.manifestName && member.name != BundleTar.envelopeName
      && blobMembers[member.name] == nil
    {
      throw Finding(.extraMember, "archive member \(member.name) is not listed in the manifest")
    }
    let expectedOrder = [BundleTar.manifestName, BundleTar.envelopeName] + manifest.blobs.map(\.path)
    for (index, member) in members.enumerated() where member.name != expectedOrder[index] {
      throw Finding(
        .memberOrder, "archive member \(index) is \(member.name), expected \(expectedOrder[index])")
    }
    return blobMembers
  }
}
