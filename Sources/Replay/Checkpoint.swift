import EvidenceIO
public import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Replay progress that survives a crash: for each stream, the next sequence number to send.
///
/// Bound to one bundle (its manifest SHA-256) and to the time shift in force, so a resumed replay
/// sends the remaining records with the same offset as the records sent before the interruption.
public struct ReplayCheckpoint: Sendable, Equatable {
  /// The value of the file's `kind` field.
  public static let kind = "stella-forensics replay checkpoint"
  public static let version = 1

  /// The bundle this progress belongs to.
  public var manifestSHA256: String
  /// The nanoseconds added to every timestamp; `nil` when timestamps are sent unchanged.
  public var timeShiftNanos: Int64?
  /// The next sequence number to send, per stream; a stream not listed starts at its first record.
  public var nextSeq: [StreamKey: UInt64]

  /// A checkpoint for the bundle whose `manifest.json` has SHA-256 `manifestSHA256`.
  public init(manifestSHA256: String, timeShiftNanos: Int64?, nextSeq: [StreamKey: UInt64] = [:]) {
    self.manifestSHA256 = manifestSHA256
    self.timeShiftNanos = timeShiftNanos
    self.nextSeq = nextSeq
  }

  /// Canonical JSON (RFC 8785), streams sorted, 64-bit values as decimal strings.
  public func encoded() throws(ReplayError) -> [UInt8] {
    let streams: [JSONValue] = nextSeq.keys.sorted().map { key in
      .object([
        ("node", .string(key.node)), ("signal", .string(key.signal.rawValue)), ("tenant", .string(key.tenant)),
        ("nextSeq", .string(String(nextSeq[key] ?? 0))),
      ])
    }
    let value = JSONValue.object([
      ("kind", .string(Self.kind)), ("version", .integer(Self.version)),
      ("manifestSha256", .string(manifestSHA256)),
      ("timeShiftNanos", timeShiftNanos.map { .string(String($0)) } ?? .null),
      ("streams", .array(streams)),
    ])
    do {
      return try CanonicalJSON.serialize(value)
    } catch {
      throw ReplayError(.checkpointWriteFailed, "cannot encode the checkpoint: \(error)")
    }
  }

  /// Parses a checkpoint file's bytes; `path` names it in errors.
  public static func decode(_ bytes: [UInt8], path: String) throws(ReplayError) -> ReplayCheckpoint {
    func bad(_ why: String) -> ReplayError { ReplayError(.checkpointInvalid, "checkpoint \(path): \(why)") }
    let value: JSONValue
    do {
      value = try CanonicalJSON.parse(bytes)
    } catch {
      throw bad("not JSON (\(error))")
    }
    guard case .string(kind)? = value["kind"] else { throw bad("not a replay checkpoint") }
    guard case .number(let version)? = value["version"], version == String(Self.version) else {
      throw bad("unsupported version")
    }
    guard case .string(let digest)? = value["manifestSha256"], Hex.isHex64(digest) else {
      throw bad("manifestSha256 missing")
    }
    var shift: Int64?
    switch value["timeShiftNanos"] {
    case .null?: shift = nil
    case .string(let text)?:
      guard let parsed = Int64(text) else { throw bad("timeShiftNanos is not an integer") }
      shift = parsed
    default: throw bad("timeShiftNanos missing")
    }
    guard case .array(let streams)? = value["streams"] else { throw bad("streams missing") }
    var nextSeq: [StreamKey: UInt64] = [:]
    for stream in streams {
      guard case .string(let node)? = stream["node"], case .string(let signalName)? = stream["signal"],
        let signal = Signal(rawValue: signalName), case .string(let tenant)? = stream["tenant"],
        case .string(let seqText)? = stream["nextSeq"], let seq = UInt64(seqText)
      else { throw bad("malformed stream entry") }
      nextSeq[StreamKey(node: node, signal: signal, tenant: tenant)] = seq
    }
    return ReplayCheckpoint(manifestSHA256: digest, timeShiftNanos: shift, nextSeq: nextSeq)
  }
}

/// Reading and durably replacing a checkpoint file.
public enum CheckpointFile {
  /// The checkpoint at `path`, or `nil` when there is no file yet.
  public static func load(path: String) throws(ReplayError) -> ReplayCheckpoint? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      if errno == ENOENT { return nil }
      throw ReplayError(.checkpointInvalid, "checkpoint \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
      let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count < 0 {
        if errno == EINTR { continue }
        throw ReplayError(.checkpointInvalid, "checkpoint \(path): \(String(cString: strerror(errno)))")
      }
      if count == 0 { break }
      bytes.append(contentsOf: chunk[0..<count])
      guard bytes.count <= 64 << 20 else { throw ReplayError(.checkpointInvalid, "checkpoint \(path): too large") }
    }
    return try ReplayCheckpoint.decode(bytes, path: path)
  }

  /// Replaces the file at `path` atomically and durably, 0600: write a temporary file beside
  /// it (never through a symlink planted there), fsync it, rename it over the old one, fsync the
  /// directory. A crash at any point leaves either the old checkpoint or the new one, never a
  /// torn one.
  public static func store(_ checkpoint: ReplayCheckpoint, path: String) throws(ReplayError) {
    let bytes = try checkpoint.encoded()
    do {
      try EvidenceFiles.writeAtomically(bytes, to: path, replacing: true)
    } catch {
      throw ReplayError(.checkpointWriteFailed, "checkpoint \(path): \(error)")
    }
  }
}
