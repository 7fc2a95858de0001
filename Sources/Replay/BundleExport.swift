import Dispatch
import EvidenceIO
public import Manifest
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// File formats other tools read.
public enum ExportFormat: String, Sendable, CaseIterable {
  /// JSON lines, one OTLP/JSON `Export…ServiceRequest` per line (the Collector's `otlpjsonfile`
  /// receiver and file exporter `format: json`).
  case otlpJSON = "otlp-json"
  /// The Collector file exporter's `format: proto` stream: per request a 4-byte big-endian
  /// length, then the serialized request.
  case otlpProto = "otlp-proto"
  /// Metrics as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
  case openMetrics = "openmetrics"
}

/// One file an export wrote.
public struct ExportedFile: Sendable, Equatable {
  /// The file name within the output directory (never derived from raw tenant text).
  public var name: String
  /// The signal and tenant whose records the file holds.
  public var signal: Signal
  public var tenant: String
  /// Archived requests the file holds.
  public var records: UInt64
  /// The file size.
  public var bytes: UInt64
  /// Lowercase hex SHA-256 of the file.
  public var sha256: String
}

/// What an export wrote.
public struct ExportReport: Sendable {
  public var files: [ExportedFile] = []
  /// OpenMetrics only: data points written, and points with no OpenMetrics form.
  public var renderedPoints: UInt64 = 0
  public var skippedPoints: UInt64 = 0
}

/// Writes a deeply verified bundle as files: one per signal and tenant, plus `index.json`.
///
/// Deterministic: the same bundle gives byte-identical files. Within a file, records come stream
/// by stream (nodes in byte order), each stream in sequence order. File names are
/// `<signal>.tenant-<first 16 hex digits of SHA-256(tenant)>.<ext>`, so a tenant name (which
/// may hold `/`, `..` or any Unicode) never reaches the file system; `index.json` maps each file
/// back to its tenant.
public enum BundleExport {
  /// The file that maps export files to their signal and tenant.
  public static let indexName = "index.json"

  /// Writes every stream of `bundle` (metrics only for OpenMetrics) into `directory` (made 0700
  /// if missing); each file is 0600 and appears only when complete.
  /// - Parameter replacing: whether files of the same names already in `directory` are replaced
  ///   (by rename: a symlink there is replaced, never written through). Without it, any existing
  ///   one is refused before anything is written.
  /// - Throws: ``ReplayError`` `.outputExists` naming the files already there, `.outputFailed`
  ///   naming the file, or a reading error naming the blob.
  public static func run(bundle: DeeplyVerifiedBundle, format: ExportFormat, directory: String, replacing: Bool = false)
    throws(ReplayError) -> ExportReport
  {
    let plan = ExportPlan(streams: bundle.streams, format: format)
    try plan.prepare(directory: directory, replacing: replacing)
    let reader = try ArchivedRecordReader(bundle)
    // Files are independent, so they are written at once (one per core): while one file's
    // bytes are hashed, another's go to the page cache. Each file's content is still made in
    // its own fixed order, so the output does not depend on the interleaving.
    let ordered = plan.groups
    let streamsOfGroup = plan.streamsOfGroup
    let written = Mutex([Result<WrittenGroup, ReplayError>?](repeating: nil, count: ordered.count))
    DispatchQueue.concurrentPerform(iterations: ordered.count) { position in
      let group = ordered[position]
      let result = Result { () throws(ReplayError) in
        try exportGroup(
          group, streams: streamsOfGroup[position], reader: reader, format: format, directory: directory,
          replacing: replacing)
      }
      written.withLock { $0[position] = result }
    }
    var groups: [WrittenGroup] = []
    for result in written.withLock({ $0 }) {
      guard let result else { continue }
      groups.append(try result.get())
    }
    return try finish(groups, bundle: bundle, format: format, directory: directory, replacing: replacing)
  }

  /// Adds up the written files and writes `index.json`, last, so its presence means a complete
  /// export.
  static func finish(
    _ groups: [WrittenGroup], bundle: DeeplyVerifiedBundle, format: ExportFormat, directory: String, replacing: Bool
  ) throws(ReplayError) -> ExportReport {
    var report = ExportReport()
    for group in groups {
      report.files.append(group.file)
      report.renderedPoints += group.renderedPoints
      report.skippedPoints += group.skippedPoints
    }
    let index = try OutputFile(directory: directory, name: indexName, replacing: replacing)
    try index.append(indexJSON(bundle: bundle, format: format, report: report) + [0x0A])
    _ = try index.commit()
    return report
  }

  /// Which files an export writes, and which streams go into each, in file order.
  struct ExportPlan {
    /// One per file, sorted.
    let groups: [GroupKey]
    /// Per group, its streams in ``StreamKey`` order, each with its blobs in sequence order.
    let streamsOfGroup: [[(StreamKey, [BlobEntry])]]
    let fileNames: [String]

    init(streams: [(key: StreamKey, blobs: [BlobEntry])], format: ExportFormat) {
      var byGroup: [GroupKey: [(StreamKey, [BlobEntry])]] = [:]
      for (key, blobs) in streams {
        if format == .openMetrics && key.signal != .metrics { continue }
        byGroup[GroupKey(signal: key.signal, tenant: key.tenant), default: []].append((key, blobs))
      }
      groups = byGroup.keys.sorted()
      streamsOfGroup = groups.map { byGroup[$0] ?? [] }
      fileNames = groups.map { fileName(signal: $0.signal, tenant: $0.tenant, format: format) }
    }

    /// Refuses files already in `directory` (unless `replacing`), then makes the directory.
    func prepare(directory: String, replacing: Bool) throws(ReplayError) {
      if !replacing {
        let existing = (fileNames + [indexName]).filter { EvidenceFiles.exists(directory + "/" + $0) }.sorted()
        guard existing.isEmpty else {
          throw ReplayError(
            .outputExists,
            "\(directory) already holds \(existing.joined(separator: ", ")); refusing to overwrite (give --force to replace them)"
          )
        }
      }
      try makeDirectory(directory)
    }
  }

  /// One file written, with the OpenMetrics point counts it added.
  struct WrittenGroup: Sendable {
    var file: ExportedFile
    var renderedPoints: UInt64 = 0
    var skippedPoints: UInt64 = 0
  }

  /// Writes the file of one signal and tenant: its streams in order, each in sequence order.
  static func exportGroup(
    _ group: GroupKey, streams: [(StreamKey, [BlobEntry])], reader: ArchivedRecordReader, format: ExportFormat,
    directory: String, replacing: Bool
  ) throws(ReplayError) -> WrittenGroup {
    let writer = try GroupWriter(group, format: format, directory: directory, replacing: replacing)
    for (_, blobs) in streams {
      for blob in blobs {
        let segment = try reader.segment(blob)
        try segment.bytes.withUnsafeBytes { raw in
          Result { () throws(ReplayError) in try writer.append(raw, records: segment.records, of: blob) }
        }.get()
      }
    }
    return try writer.commit()
  }

  /// One export file being written: the records of its segments, given in file order.
  final class GroupWriter {
    let group: GroupKey
    let name: String
    private let format: ExportFormat
    private let file: OutputFile
    private var records: UInt64 = 0
    private var renderer = OpenMetricsRenderer()

    init(_ group: GroupKey, format: ExportFormat, directory: String, replacing: Bool) throws(ReplayError) {
      self.group = group
      self.format = format
      name = fileName(signal: group.signal, tenant: group.tenant, format: format)
      file = try OutputFile(directory: directory, name: name, replacing: replacing)
    }

    /// Appends the records of one decompressed segment (`records` locate them in `segment`).
    func append(_ segment: UnsafeRawBufferPointer, records located: [ArchivedSegment.Record], of blob: BlobEntry)
      throws(ReplayError)
    {
      for record in located {
        let request = UnsafeRawBufferPointer(rebasing: segment[record.request])
        do {
          switch format {
          case .otlpJSON:
            try file.append(OTLPJSONEncoding.json(request: request, signal: group.signal))
            try file.append([0x0A])
          case .otlpProto:
            // The length prefix and the archived bytes go straight from the segment into the
            // file's buffer: no per-record array.
            try file.appendLengthPrefixed(request)
          case .openMetrics:
            try renderer.add(request: request)
          }
        } catch {
          var located = error
          located.stream = blob.stream
          located.seq = record.seq
          throw located
        }
        records += 1
      }
    }

    /// Finishes the file (OpenMetrics renders here), syncs it and moves it into place.
    func commit() throws(ReplayError) -> WrittenGroup {
      var written = WrittenGroup(
        file: ExportedFile(name: name, signal: group.signal, tenant: group.tenant, records: 0, bytes: 0, sha256: ""))
      if format == .openMetrics {
        try file.append(renderer.render())
        written.renderedPoints = renderer.renderedPoints
        written.skippedPoints = renderer.skippedPoints
      }
      let (bytes, digest) = try file.commit()
      written.file.records = records
      written.file.bytes = bytes
      written.file.sha256 = digest
      return written
    }
  }

  struct GroupKey: Hashable, Comparable, Sendable {
    var signal: Signal
    var tenant: String
    static func < (lhs: GroupKey, rhs: GroupKey) -> Bool {
      if lhs.signal != rhs.signal { return lhs.signal < rhs.signal }
      return lhs.tenant.utf8.lexicographicallyPrecedes(rhs.tenant.utf8)
    }
  }

  /// `<signal>.tenant-<16 hex>.<ext>`.
  public static func fileName(signal: Signal, tenant: String, format: ExportFormat) -> String {
    let token = String(SHA256Digest.hex(of: Array(tenant.utf8)).prefix(16))
    let ext =
      switch format {
      case .otlpJSON: "jsonl"
      case .otlpProto: "pb"
      case .openMetrics: "om.txt"
      }
    return "\(signal.rawValue).tenant-\(token).\(ext)"
  }

  static func indexJSON(bundle: DeeplyVerifiedBundle, format: ExportFormat, report: ExportReport) throws(ReplayError)
    -> [UInt8]
  {
    var fields: [(key: String, value: JSONValue)] = [
      ("bundleManifestSha256", .string(bundle.manifestSHA256)), ("format", .string(format.rawValue)),
      ("incident", .string(bundle.manifest.incident.id)),
      ("files", report.filesJSON),
    ]
    if format == .openMetrics {
      fields.append(("renderedPoints", .number(String(report.renderedPoints))))
      fields.append(("skippedPoints", .number(String(report.skippedPoints))))
    }
    do {
      return try CanonicalJSON.serialize(.object(fields))
    } catch {
      throw ReplayError(.outputFailed, "cannot encode \(indexName): \(error)")
    }
  }

  static func makeDirectory(_ path: String) throws(ReplayError) {
    do {
      try EvidenceFiles.makeDirectories(path)
    } catch {
      throw ReplayError(.outputFailed, "cannot create the output directory: \(error)")
    }
  }
}

/// A file written under a temporary name and moved into place when complete, so a reader
/// never sees half a file and an interrupted export leaves no file that looks finished.
///
/// The temporary file is created 0600 with `O_EXCL | O_NOFOLLOW` after removing what is at its
/// name, so a symlink planted there (in a shared output directory) is never written through.
final class OutputFile {
  let path: String
  private let temporary: String
  private let replacing: Bool
  private var descriptor: Int32
  private var buffer: [UInt8] = []
  private var hasher = SHA256Hasher()
  private var written: UInt64 = 0

  init(directory: String, name: String, replacing: Bool) throws(ReplayError) {
    path = directory + "/" + name
    temporary = directory + "/." + name + ".partial"
    self.replacing = replacing
    do {
      descriptor = try EvidenceFiles.createTemporary(temporary)
    } catch {
      throw ReplayError(.outputFailed, "cannot create the temporary file: \(error)")
    }
    buffer.reserveCapacity(1 << 20)
  }

  deinit {
    if descriptor >= 0 {
      close(descriptor)
      unlink(temporary)
    }
  }

  func append(_ bytes: [UInt8]) throws(ReplayError) {
    buffer.append(contentsOf: bytes)
    if buffer.count >= 1 << 20 { try flush() }
  }

  /// Appends a 4-byte big-endian length, then `bytes` (the Collector's `format: proto` framing).
  func appendLengthPrefixed(_ bytes: UnsafeRawBufferPointer) throws(ReplayError) {
    let length = UInt32(truncatingIfNeeded: bytes.count)
    buffer.append(UInt8(truncatingIfNeeded: length >> 24))
    buffer.append(UInt8(truncatingIfNeeded: length >> 16))
    buffer.append(UInt8(truncatingIfNeeded: length >> 8))
    buffer.append(UInt8(truncatingIfNeeded: length))
    if bytes.count < 1 << 16 {
      buffer.append(contentsOf: bytes)
      if buffer.count >= 1 << 20 { try flush() }
      return
    }
    // A large request is hashed and written from where it lies rather than copied first.
    try flush()
    try writeOut(bytes)
  }

  private func flush() throws(ReplayError) {
    try buffer.withUnsafeBytes { raw in Result { () throws(ReplayError) in try writeOut(raw) } }.get()
    buffer.removeAll(keepingCapacity: true)
  }

  /// Hashes and writes `bytes` to the temporary file.
  private func writeOut(_ bytes: UnsafeRawBufferPointer) throws(ReplayError) {
    hasher.update(bytes)
    var done = 0
    while done < bytes.count {
      let result = write(descriptor, bytes.baseAddress.map { $0 + done }, bytes.count - done)
      if result < 0 {
        if errno == EINTR { continue }
        throw ReplayError(.outputFailed, "write to \(temporary) failed: \(String(cString: strerror(errno)))")
      }
      done += result
    }
    written += UInt64(bytes.count)
  }

  /// Flushes, syncs and renames into place. Returns the size and SHA-256.
  func commit() throws(ReplayError) -> (UInt64, String) {
    try flush()
    guard fsync(descriptor) == 0 else {
      throw ReplayError(.outputFailed, "fsync of \(temporary) failed: \(String(cString: strerror(errno)))")
    }
    close(descriptor)
    descriptor = -1
    do {
      try EvidenceFiles.publish(temporary, as: path, replacing: replacing)
    } catch {
      throw ReplayError(
        error.kind == .exists ? .outputExists : .outputFailed,
        error.kind == .exists ? "\(path) appeared while exporting; refusing to overwrite it" : "\(error)")
    }
    var finished = SHA256Hasher()
    swap(&finished, &hasher)
    return (written, Hex.encode(finished.finalize()))
  }
}

extension ExportReport {
  /// The written files as the export's `index.json` and `export --json` list them.
  public var filesJSON: JSONValue {
    .array(
      files.map { file in
        .object([
          ("name", .string(file.name)), ("signal", .string(file.signal.rawValue)),
          ("tenant", .string(file.tenant)), ("records", .number(String(file.records))),
          ("bytes", .number(String(file.bytes))), ("sha256", .string(file.sha256)),
        ])
      })
  }
}
