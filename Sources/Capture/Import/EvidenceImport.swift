import Audit
public import Manifest

/// What `import` turns a set of OTLP files into: sealed segments and the facts of the bundle.
public struct ImportedEvidence: Sendable {
  public var segments: [SealedSegment]
  public var facts: BundleFacts
  /// Records read, per signal.
  public var recordCounts: [Signal: Int]
}

/// Why an import failed; every case is the input's or the caller's fault (exit 2).
public enum EvidenceImportError: Error, CustomStringConvertible, Sendable {
  /// An input file could not be read or decoded.
  case input(ImportError)
  /// An option has an invalid value.
  case invalidOption(String)
  /// The records could not be made into valid segments (for example a record over the size limit).
  case unsealable(String)

  public var description: String {
    switch self {
    case .input(let error): return error.description
    case .invalidOption(let message), .unsealable(let message): return message
    }
  }
}

/// Options of an import; `nil` facts take the documented defaults.
public struct ImportOptions: Sendable {
  /// Incident id; default `import-` + the first 16 hex digits of the evidence digest.
  public var incidentID: String?
  /// Default `imported from OTLP files`.
  public var reason: String?
  /// Default `stella-forensics import`.
  public var declaredBy: String?
  /// Tenant of every record; default `default`.
  public var tenant: String?
  /// The signal of protobuf requests that hold no span, log record or metric, in files where no
  /// other request tells it (`--signal`); without it such a file is refused.
  public var emptyRequestSignal: Signal?
  /// Largest decompressed segment before a new one is started.
  public var maxSegmentBytes: Int = 32 << 20
  /// Called after each input file is read, with how many files are done.
  public var onFileDone: (@Sendable (_ filesDone: Int, _ path: String) -> Void)?

  public init(incidentID: String? = nil, reason: String? = nil, declaredBy: String? = nil, tenant: String? = nil) {
    self.incidentID = incidentID
    self.reason = reason
    self.declaredBy = declaredBy
    self.tenant = tenant
  }
}

/// Turns OTLP files into bundle-ready evidence (node `import`, sequences from 0 per stream in
/// input order, arrival time unknown).
public enum EvidenceImport {
  /// The capture node id of imported records.
  public static let nodeID = "import"

  /// Reads `paths` in order and seals their records into segments.
  ///
  /// Defaults are chosen so the result depends only on the evidence: the incident id comes
  /// from a digest over every record's signal and request bytes (so the same records give the
  /// same id whether they came as JSON or protobuf, compressed or not); the capture window is
  /// the span of the records' own timestamps; the declaration time is the window's end.
  public static func prepare(paths: [String], options: ImportOptions) throws(EvidenceImportError) -> ImportedEvidence {
    let tenant = options.tenant ?? "default"
    if let problem = TenantName.problem(with: tenant) {
      throw .invalidOption("--tenant \"\(tenant)\": \(problem)")
    }
    // Imported files are telemetry; a stream under the audit tenant would pose as a capture
    // node's custody record.
    if AuditStream.isReserved(tenant: tenant) {
      throw .invalidOption("--tenant \"\(tenant)\" is reserved for a capture node's audit stream")
    }
    var evidenceDigest = SHA256Hasher()
    var streams: [Signal: PendingSegment] = [:]
    var segments: [SealedSegment] = []
    // One file's records at a time; segments are sealed (and their records dropped) as they
    // fill, so memory holds the compressed segments and one file, not every record.
    for (index, path) in paths.enumerated() {
      let records: [ImportedRecord]
      do {
        records = try OTLPFileImporter.read(contentsOf: path, emptyRequestSignal: options.emptyRequestSignal).records
      } catch {
        throw .input(error)
      }
      for record in records {
        evidenceDigest.update([record.signal.code])
        var length = UInt64(record.request.count).bigEndian
        withUnsafeBytes(of: &length) { evidenceDigest.update($0) }
        evidenceDigest.update(record.request)
        var stream =
          streams[record.signal]
          ?? PendingSegment(header: SegmentHeader(signal: record.signal, tenant: tenant, node: nodeID))
        if !stream.fits(record.request, maxBytes: options.maxSegmentBytes) {
          segments.append(try stream.seal())
        }
        stream.add(record)
        streams[record.signal] = stream
      }
      options.onFileDone?(index + 1, path)
    }
    for signal in Signal.allCases {
      guard var stream = streams[signal], !stream.records.isEmpty else { continue }
      segments.append(try stream.seal())
    }
    let digest = Hex.encode(evidenceDigest.finalize())

    let timed = segments.map(\.entry).filter { $0.firstTimeUnixNano != 0 || $0.lastTimeUnixNano != 0 }
    let captureStart = timed.map(\.firstTimeUnixNano).min() ?? 0
    let captureEnd = max(captureStart, timed.map(\.lastTimeUnixNano).max() ?? 0)
    let facts = BundleFacts(
      incident: IncidentFacts(
        id: options.incidentID ?? "import-" + digest.prefix(16),
        reason: options.reason ?? "imported from OTLP files",
        declaredBy: options.declaredBy ?? "stella-forensics import",
        declaredAtUnixNano: captureEnd),
      captureStartUnixNano: captureStart, captureEndUnixNano: captureEnd,
      redactionPolicy: .none, tool: .current)
    return ImportedEvidence(
      segments: segments, facts: facts,
      recordCounts: streams.mapValues { Int($0.nextSeq) })
  }
}

/// The records of one stream waiting to fill a segment.
private struct PendingSegment {
  let header: SegmentHeader
  var records: [SegmentRecord] = []
  var firstSource: ImportSource?
  var framedBytes = 0
  var nextSeq: UInt64 = 0

  init(header: SegmentHeader) { self.header = header }

  /// Whether `request` may join the current segment; a segment always takes its first record.
  func fits(_ request: [UInt8], maxBytes: Int) -> Bool {
    records.isEmpty || framedBytes + request.count <= maxBytes
  }

  mutating func add(_ record: ImportedRecord) {
    if records.isEmpty { firstSource = record.source }
    records.append(SegmentRecord(seq: nextSeq, receivedUnixNano: 0, request: record.request))
    framedBytes += record.request.count + SegmentRecord.frameHeaderSize + SegmentRecord.bodyPrefixSize
    nextSeq += 1
  }

  mutating func seal() throws(EvidenceImportError) -> SealedSegment {
    defer {
      records.removeAll()
      framedBytes = 0
    }
    do {
      return try SegmentSealer.seal(header: header, records: records)
    } catch {
      let source = firstSource?.description ?? "input"
      throw .unsealable("\(source): cannot seal \(header.signal.rawValue) records: \(error)")
    }
  }
}
