import EvidenceIO
import Foundation
public import Manifest

#if canImport(Glibc)
  import Glibc
#endif

/// Where the journal keeps its files under the data directory.
///
/// ```
/// DATA/node-id                                 the node id, written once
/// DATA/LOCK                                    held (flock) by the running capture process
/// DATA/incidents.jsonl                         the incident log
/// DATA/redaction-policy.json                   the redaction policy records are journaled under now
/// DATA/archive/…                               the long-term archive: the same layout, node id `<node>.archive`
/// DATA/journal/<signal>/t-<tenant key>/
///     <firstSeq, 20 digits>.open               the stream's open segment: an uncompressed segment (§6.2)
///     <firstSeq, 20 digits>.zst                a sealed segment: exactly a bundle blob
///     <firstSeq, 20 digits>.json               its blob entry and arrival times (canonical JSON)
/// ```
///
/// Tenant names never appear in paths: a tenant's directory is named by a digest of the name,
/// and the name itself lives in the segment headers. Seqs are never reused in a stream, so a
/// segment's first seq names it uniquely.
public struct JournalLayout: Sendable {
  public let dataDirectory: String

  public init(dataDirectory: String) {
    self.dataDirectory = dataDirectory
  }

  public var journalDirectory: String { dataDirectory + "/journal" }
  public var nodeIDPath: String { dataDirectory + "/node-id" }
  public var lockPath: String { dataDirectory + "/LOCK" }
  /// The long-term archive: a journal of its own (what tail sampling keeps, with its own node id
  /// and sequence numbers), never pruned by the ring.
  public var archiveDataDirectory: String { dataDirectory + "/archive" }
  /// The redaction policy (id and digest) records are journaled under now.
  public var redactionPolicyPath: String { dataDirectory + "/redaction-policy.json" }

  /// The directory of one stream's segments.
  public func streamDirectory(signal: Signal, tenant: String) -> String {
    "\(journalDirectory)/\(signal.rawValue)/\(JournalLayout.tenantKey(tenant))"
  }

  /// A file-name-safe key for a tenant: `t-` and 32 hex digits of the name's SHA-256.
  public static func tenantKey(_ tenant: String) -> String {
    "t-" + SHA256Digest.hex(of: Array(tenant.utf8)).prefix(32)
  }

  static func fileStem(firstSeq: UInt64) -> String {
    let digits = String(firstSeq)
    return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
  }

  package static func openPath(in directory: String, firstSeq: UInt64) -> String {
    "\(directory)/\(fileStem(firstSeq: firstSeq)).open"
  }

  package static func sealedPath(in directory: String, firstSeq: UInt64) -> String {
    "\(directory)/\(fileStem(firstSeq: firstSeq)).zst"
  }

  package static func sidecarPath(in directory: String, firstSeq: UInt64) -> String {
    "\(directory)/\(fileStem(firstSeq: firstSeq)).json"
  }

  /// Every stream directory that exists, as paths.
  package func streamDirectories() -> [String] {
    var result: [String] = []
    for signal in Signal.allCases {
      let signalDirectory = "\(journalDirectory)/\(signal.rawValue)"
      for name in JournalLayout.directoryEntries(signalDirectory) where name.hasPrefix("t-") {
        result.append("\(signalDirectory)/\(name)")
      }
    }
    return result.sorted()
  }

  /// The files of one stream directory, grouped by kind and sorted by first seq.
  package static func listStream(_ directory: String) -> StreamFiles {
    var files = StreamFiles()
    for name in directoryEntries(directory) {
      if name.hasSuffix(".partial") {
        files.partial.append("\(directory)/\(name)")
        continue
      }
      guard let dot = name.firstIndex(of: "."), let seq = UInt64(name[..<dot]) else { continue }
      switch name[dot...] {
      case ".open": files.open.append(seq)
      case ".zst": files.sealed.append(seq)
      case ".json": files.sidecars.insert(seq)
      default: continue
      }
    }
    files.open.sort()
    files.sealed.sort()
    return files
  }

  static func directoryEntries(_ path: String) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
  }
}

/// The files found in one stream directory.
package struct StreamFiles {
  package var open: [UInt64] = []
  package var sealed: [UInt64] = []
  package var sidecars: Set<UInt64> = []
  package var partial: [String] = []
}

/// A sealed segment of the journal as its sidecar describes it.
public struct JournalSegment: Sendable, Equatable {
  /// The blob entry the segment has in any bundle.
  public var entry: BlobEntry
  /// Path of the `.zst` file: the blob's exact bytes.
  public var path: String
  /// Arrival times of its first and last record (0 when unknown).
  public var firstReceivedUnixNano: UInt64
  public var lastReceivedUnixNano: UInt64
  /// The redaction policy its records went through before they were journaled.
  public var redactionPolicy: RedactionPolicyReference

  public init(
    entry: BlobEntry, path: String, firstReceivedUnixNano: UInt64, lastReceivedUnixNano: UInt64,
    redactionPolicy: RedactionPolicyReference
  ) {
    self.entry = entry
    self.path = path
    self.firstReceivedUnixNano = firstReceivedUnixNano
    self.lastReceivedUnixNano = lastReceivedUnixNano
    self.redactionPolicy = redactionPolicy
  }

  /// The sidecar's canonical JSON.
  func sidecarBytes() throws(JournalError) -> [UInt8] {
    let value = JSONValue.object([
      ("entry", entry.jsonValue),
      ("firstReceivedUnixNano", .string(String(firstReceivedUnixNano))),
      ("lastReceivedUnixNano", .string(String(lastReceivedUnixNano))),
      ("redactionPolicy", JournalPolicyFile.jsonValue(redactionPolicy)),
    ])
    do {
      return try CanonicalJSON.serialize(value)
    } catch {
      throw JournalError(.io, "cannot serialize the sidecar of \(path): \(error)")
    }
  }

  /// Reads a sidecar written by ``sidecarBytes()``.
  package static func read(sidecar: String, sealedPath: String) throws(JournalError) -> JournalSegment {
    let bytes: [UInt8]
    do {
      let source = try FileByteSource(path: sidecar)
      bytes = try source.bytes(at: 0, count: source.count)
    } catch {
      throw JournalError(.io, "\(sidecar): \(error)")
    }
    do {
      guard case .object(let members) = try CanonicalJSON.parse(bytes) else {
        throw JournalError(.corrupt, "\(sidecar): not a JSON object")
      }
      var entry: BlobEntry?
      var first: UInt64?
      var last: UInt64?
      var policy = RedactionPolicyReference.none
      for (key, value) in members {
        switch (key, value) {
        case ("entry", _): entry = try BlobEntry(validating: value, at: "entry")
        case ("redactionPolicy", _): policy = try JournalPolicyFile.reference(from: value, path: sidecar)
        case ("firstReceivedUnixNano", .string(let text)): first = BundleManifest.parseU64String(text)
        case ("lastReceivedUnixNano", .string(let text)): last = BundleManifest.parseU64String(text)
        default: continue
        }
      }
      guard let entry, let first, let last else {
        throw JournalError(.corrupt, "\(sidecar): missing entry or arrival times")
      }
      return JournalSegment(
        entry: entry, path: sealedPath, firstReceivedUnixNano: first, lastReceivedUnixNano: last,
        redactionPolicy: policy)
    } catch let error as JournalError {
      throw error
    } catch {
      throw JournalError(.corrupt, "\(sidecar): \(error)")
    }
  }
}

/// Small file-system helpers with the journal's error type.
enum JournalFiles {
  /// Writes `bytes` to `path` atomically and durably with exactly `mode` (see
  /// `EvidenceFiles.writeAtomically`): a symlink planted at the temporary path is never followed.
  static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = EvidenceFiles.fileMode)
    throws(JournalError)
  {
    do {
      try EvidenceFiles.writeAtomically(bytes, to: path, mode: mode)
    } catch {
      throw JournalError(error)
    }
  }

  static func syncDirectory(of path: String) throws(JournalError) {
    do {
      try EvidenceFiles.syncDirectory(of: path)
    } catch {
      throw JournalError(error)
    }
  }

  /// Makes `path` and its missing parents with mode 0700, each new name synced into its parent.
  static func makeDirectories(_ path: String) throws(JournalError) {
    do {
      try EvidenceFiles.makeDirectories(path)
    } catch {
      throw JournalError(error)
    }
  }

  static func size(of path: String) -> Int64 {
    var info = stat()
    return stat(path, &info) == 0 ? Int64(info.st_size) : 0
  }

  /// Bytes available to unprivileged writers on the file system holding `path`.
  static func freeBytes(at path: String) -> Int64? {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return nil }
    return Int64(info.f_bavail) * Int64(info.f_frsize)
  }

  static func kindForErrno() -> JournalError.Kind {
    Glibc.errno == ENOSPC || Glibc.errno == EDQUOT ? .full : .io
  }

  static func errno(_ what: String) -> JournalError {
    JournalError(kindForErrno(), "\(what): \(String(cString: strerror(Glibc.errno)))")
  }
}

extension JournalError {
  /// A file-system failure under the journal: a full disk stays retryable (`.full`).
  init(_ error: FileSafetyError) {
    self.init(error.kind == .full ? .full : .io, error.description)
  }
}

/// The redaction policy reference as the journal stores it (`DATA/redaction-policy.json`, and in
/// every sidecar): `{"id": ..., "sha256": ...}`.
package enum JournalPolicyFile {
  static func jsonValue(_ policy: RedactionPolicyReference) -> JSONValue {
    .object([("id", .string(policy.id)), ("sha256", .string(policy.sha256))])
  }

  static func reference(from value: JSONValue, path: String) throws(JournalError) -> RedactionPolicyReference {
    guard case .object(let members) = value,
      case .string(let id)? = members.first(where: { $0.key == "id" })?.value,
      case .string(let sha256)? = members.first(where: { $0.key == "sha256" })?.value, Hex.isHex64(sha256)
    else {
      throw JournalError(.corrupt, "\(path): redactionPolicy must be {id, sha256}")
    }
    return RedactionPolicyReference(id: id, sha256: sha256)
  }

  /// The policy the data directory's open segments were journaled under (`none` if never set).
  package static func read(_ layout: JournalLayout) throws(JournalError) -> RedactionPolicyReference {
    let path = layout.redactionPolicyPath
    guard FileManager.default.fileExists(atPath: path) else { return .none }
    do {
      let source = try FileByteSource(path: path)
      return try reference(from: try CanonicalJSON.parse(try source.bytes(at: 0, count: source.count)), path: path)
    } catch let error as JournalError {
      throw error
    } catch {
      throw JournalError(.corrupt, "\(path): \(error)")
    }
  }

  static func write(_ policy: RedactionPolicyReference, _ layout: JournalLayout) throws(JournalError) {
    let bytes: [UInt8]
    do {
      bytes = try CanonicalJSON.serialize(jsonValue(policy))
    } catch {
      throw JournalError(.io, "cannot serialize the redaction policy reference: \(error)")
    }
    try JournalFiles.writeAtomically(bytes, to: layout.redactionPolicyPath)
  }
}

extension JournalLayout {
  /// The `request` bytes of the last record of the stream of `signal` and `tenant`, or `nil` when
  /// the stream has none (the audit trail continues its hash chain from it). Segments are read newest first: the open segment (already recovered,
  /// so it ends in a whole record), then sealed ones.
  public func lastRecordRequest(signal: Signal, tenant: String) throws(JournalError) -> [UInt8]? {
    let directory = streamDirectory(signal: signal, tenant: tenant)
    let files = JournalLayout.listStream(directory)
    let candidates =
      (files.open.map { (firstSeq: $0, sealed: false) } + files.sealed.map { (firstSeq: $0, sealed: true) })
      .sorted { ($0.firstSeq, $0.sealed ? 0 : 1) > ($1.firstSeq, $1.sealed ? 0 : 1) }
    for candidate in candidates {
      let path =
        candidate.sealed
        ? JournalLayout.sealedPath(in: directory, firstSeq: candidate.firstSeq)
        : JournalLayout.openPath(in: directory, firstSeq: candidate.firstSeq)
      let segment: [UInt8]
      do {
        let source = try FileByteSource(path: path)
        let bytes = try source.bytes(at: 0, count: source.count)
        segment = candidate.sealed ? try Zstd.decompress(bytes, maxOutputBytes: 1 << 30) : bytes
      } catch {
        throw JournalError(.io, "cannot read \(path) for the last record of its stream: \(error)")
      }
      var parser = SegmentStreamParser()
      var last: [UInt8]?
      // A torn tail after the last whole record is what a crash leaves; the records before it stand.
      try? segment.withUnsafeBytes { raw in try parser.consume(raw) { last = Array($0.request) } }
      if let last { return last }
    }
    return nil
  }
}
