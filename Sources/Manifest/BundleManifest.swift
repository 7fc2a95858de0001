/// Chain-of-custody facts about the incident a bundle documents (BUNDLE-FORMAT.md §4).
public struct IncidentFacts: Sendable, Equatable {
  /// The incident id, for example `INC-2024-0042`.
  public var id: String
  /// Why the incident was declared.
  public var reason: String
  /// Who (person or system) declared it.
  public var declaredBy: String
  /// When it was declared, in Unix nanoseconds.
  public var declaredAtUnixNano: UInt64

  public init(id: String, reason: String, declaredBy: String, declaredAtUnixNano: UInt64) {
    self.id = id
    self.reason = reason
    self.declaredBy = declaredBy
    self.declaredAtUnixNano = declaredAtUnixNano
  }
}

/// The capture window and the nodes that captured the evidence.
public struct CaptureWindow: Sendable, Equatable {
  /// Window start, inclusive, in Unix nanoseconds.
  public var startUnixNano: UInt64
  /// Window end in Unix nanoseconds; never before the start.
  public var endUnixNano: UInt64
  /// Ids of the capture nodes, sorted by UTF-8 bytes and unique in a canonical manifest.
  public var nodes: [String]

  public init(startUnixNano: UInt64, endUnixNano: UInt64, nodes: [String]) {
    self.startUnixNano = startUnixNano
    self.endUnixNano = endUnixNano
    self.nodes = nodes
  }
}

/// Names the redaction policy applied before capture and pins its exact bytes.
public struct RedactionPolicyReference: Sendable, Hashable {
  /// The policy's id.
  public var id: String
  /// Lowercase hex SHA-256 of the exact policy document.
  public var sha256: String

  public init(id: String, sha256: String) {
    self.id = id
    self.sha256 = sha256
  }
}

/// The tool that produced the bundle.
public struct ToolInfo: Sendable, Equatable {
  public var name: String
  public var version: String

  public init(name: String, version: String) {
    self.name = name
    self.version = version
  }
}

/// One blob of a bundle: a zstd-compressed segment of one stream (node, signal, tenant).
public struct BlobEntry: Sendable, Equatable {
  /// The only encoding formatVersion 1 defines.
  public static let segmentEncoding = "otlp-segment-v1+zstd"

  /// `blobs/sha256/<sha256>.zst`.
  public var path: String
  /// Lowercase hex SHA-256 of the blob bytes (compressed).
  public var sha256: String
  /// Size of the blob bytes (compressed).
  public var size: UInt64
  /// Size of the decompressed segment.
  public var uncompressedSize: UInt64
  public var signal: Signal
  public var tenant: String
  public var node: String
  /// Number of framed records in the segment.
  public var recordCount: UInt64
  /// Sequence number of the segment's first record in its stream.
  public var firstSeq: UInt64
  /// Sequence number of the segment's last record.
  public var lastSeq: UInt64
  /// Earliest item time in the segment (BUNDLE-FORMAT.md §6.3).
  public var firstTimeUnixNano: UInt64
  /// Latest item time in the segment.
  public var lastTimeUnixNano: UInt64
  public var encoding: String

  public init(
    sha256: String, size: UInt64, uncompressedSize: UInt64, signal: Signal, tenant: String,
    node: String, recordCount: UInt64, firstSeq: UInt64, lastSeq: UInt64,
    firstTimeUnixNano: UInt64, lastTimeUnixNano: UInt64
  ) {
    self.path = BlobEntry.path(forDigest: sha256)
    self.sha256 = sha256
    self.size = size
    self.uncompressedSize = uncompressedSize
    self.signal = signal
    self.tenant = tenant
    self.node = node
    self.recordCount = recordCount
    self.firstSeq = firstSeq
    self.lastSeq = lastSeq
    self.firstTimeUnixNano = firstTimeUnixNano
    self.lastTimeUnixNano = lastTimeUnixNano
    self.encoding = BlobEntry.segmentEncoding
  }

  /// The member name of the blob with this digest.
  public static func path(forDigest sha256: String) -> String { "blobs/sha256/\(sha256).zst" }

  /// The stream this blob belongs to.
  public var stream: StreamKey { StreamKey(node: node, signal: signal, tenant: tenant) }
}

/// A stream: the records one capture node numbered for one signal and tenant.
public struct StreamKey: Hashable, Sendable, Comparable, CustomStringConvertible {
  public var node: String
  public var signal: Signal
  public var tenant: String

  public init(node: String, signal: Signal, tenant: String) {
    self.node = node
    self.signal = signal
    self.tenant = tenant
  }

  public static func < (lhs: StreamKey, rhs: StreamKey) -> Bool {
    (Array(lhs.node.utf8), lhs.signal.code, Array(lhs.tenant.utf8))
      < (Array(rhs.node.utf8), rhs.signal.code, Array(rhs.tenant.utf8))
  }

  public var description: String { "\(node)/\(signal.rawValue)/\(tenant)" }
}

private func < (lhs: ([UInt8], UInt8, [UInt8]), rhs: ([UInt8], UInt8, [UInt8])) -> Bool {
  if lhs.0 != rhs.0 { return lhs.0.lexicographicallyPrecedes(rhs.0) }
  if lhs.1 != rhs.1 { return lhs.1 < rhs.1 }
  return lhs.2.lexicographicallyPrecedes(rhs.2)
}

/// The signed manifest of a bundle, formatVersion 1 (BUNDLE-FORMAT.md §4).
public struct BundleManifest: Sendable, Equatable {
  /// The only format version this tool reads and writes.
  public static let formatVersion = 1

  public var incident: IncidentFacts
  public var capture: CaptureWindow
  public var redactionPolicy: RedactionPolicyReference
  public var tool: ToolInfo
  /// Entries in manifest order (ascending by path in a canonical manifest).
  public var blobs: [BlobEntry]

  public init(
    incident: IncidentFacts, capture: CaptureWindow, redactionPolicy: RedactionPolicyReference,
    tool: ToolInfo, blobs: [BlobEntry]
  ) {
    self.incident = incident
    self.capture = capture
    self.redactionPolicy = redactionPolicy
    self.tool = tool
    self.blobs = blobs
  }

  /// The manifest as a JSON value, in the schema's shape.
  public var jsonValue: JSONValue {
    .object([
      ("formatVersion", .integer(BundleManifest.formatVersion)),
      (
        "incident",
        .object([
          ("id", .string(incident.id)),
          ("reason", .string(incident.reason)),
          ("declaredBy", .string(incident.declaredBy)),
          ("declaredAtUnixNano", .string(String(incident.declaredAtUnixNano))),
        ])
      ),
      (
        "capture",
        .object([
          ("startUnixNano", .string(String(capture.startUnixNano))),
          ("endUnixNano", .string(String(capture.endUnixNano))),
          ("nodes", .array(capture.nodes.map { .string($0) })),
        ])
      ),
      (
        "redactionPolicy",
        .object([("id", .string(redactionPolicy.id)), ("sha256", .string(redactionPolicy.sha256))])
      ),
      ("tool", .object([("name", .string(tool.name)), ("version", .string(tool.version))])),
      ("blobs", .array(blobs.map(\.jsonValue))),
    ])
  }

  /// The RFC 8785 bytes of the manifest, as `manifest.json` holds them.
  public func canonicalBytes() throws(JSONError) -> [UInt8] {
    try CanonicalJSON.serialize(jsonValue)
  }
}

extension BlobEntry {
  /// The entry as a JSON value, in the schema's shape.
  public var jsonValue: JSONValue {
    .object([
      ("path", .string(path)),
      ("sha256", .string(sha256)),
      ("size", .number(String(size))),
      ("uncompressedSize", .number(String(uncompressedSize))),
      ("signal", .string(signal.rawValue)),
      ("tenant", .string(tenant)),
      ("node", .string(node)),
      ("recordCount", .number(String(recordCount))),
      ("firstSeq", .string(String(firstSeq))),
      ("lastSeq", .string(String(lastSeq))),
      ("firstTimeUnixNano", .string(String(firstTimeUnixNano))),
      ("lastTimeUnixNano", .string(String(lastTimeUnixNano))),
      ("encoding", .string(encoding)),
    ])
  }
}

extension ToolInfo {
  /// This tool, as it names itself in the manifests it writes.
  public static let current = ToolInfo(name: "stella-forensics", version: "0.1.0")
}

extension RedactionPolicyReference {
  /// The policy of evidence no redaction was applied to: id `none`, digest of the empty document.
  public static let none = RedactionPolicyReference(
    id: "none", sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
}

/// One stream's totals over a manifest's blobs, for `inspect` and the report.
public struct StreamSummary: Sendable, Equatable {
  public var stream: StreamKey
  public var blobs = 0
  public var records: UInt64 = 0
  public var firstSeq = UInt64.max
  public var lastSeq: UInt64 = 0
  /// Earliest item time over the stream's blobs (Unix ns).
  public var firstTime = UInt64.max
  /// Latest item time over the stream's blobs (Unix ns).
  public var lastTime: UInt64 = 0
  public var compressedBytes: UInt64 = 0
  public var uncompressedBytes: UInt64 = 0

  public init(stream: StreamKey) { self.stream = stream }

  /// One summary per stream of `manifest`, in stream order (node, signal, tenant).
  public static func of(_ manifest: BundleManifest) -> [StreamSummary] {
    var byStream: [StreamKey: StreamSummary] = [:]
    for blob in manifest.blobs {
      var summary = byStream[blob.stream] ?? StreamSummary(stream: blob.stream)
      summary.blobs += 1
      summary.records += blob.recordCount
      summary.firstSeq = min(summary.firstSeq, blob.firstSeq)
      summary.lastSeq = max(summary.lastSeq, blob.lastSeq)
      summary.firstTime = min(summary.firstTime, blob.firstTimeUnixNano)
      summary.lastTime = max(summary.lastTime, blob.lastTimeUnixNano)
      summary.compressedBytes += blob.size
      summary.uncompressedBytes += blob.uncompressedSize
      byStream[blob.stream] = summary
    }
    return byStream.values.sorted { $0.stream < $1.stream }
  }
}
