import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Where a member's bytes come from.
public enum MemberData: Sendable {
  /// Bytes in memory (the manifest and envelope, small blobs).
  case bytes([UInt8])
  /// `count` bytes at `offset` of a file (a sealed segment, or a blob inside another bundle).
  case fileRange(path: String, offset: Int, count: Int)
  /// The same, in a file written around the page cache (``UncachedFile``) at an aligned
  /// `offset`; it is read the same way, so its bytes never take cache pages.
  case uncachedFileRange(path: String, offset: Int, count: Int)

  var count: Int {
    switch self {
    case .bytes(let bytes): return bytes.count
    case .fileRange(_, _, let count), .uncachedFileRange(_, _, let count): return count
    }
  }
}

/// Writes the canonical ustar archive of §2: each member as its §2.1 header
/// (``BundleTar/canonicalHeader(name:size:)``), its data and zero padding to the block, then two
/// zero blocks. The archive is written to a temporary file beside the output
/// (0600, created with `O_EXCL | O_NOFOLLOW`, so a symlink planted there is never followed) and
/// moved into place only when complete and synced (``EvidenceFiles/publish(_:as:replacing:)``),
/// so a failure never leaves a partial bundle.
public enum BundleArchiveWriter {
  /// Writes `members` in the given order to `outputPath`.
  /// - Parameter replacing: whether an existing file at `outputPath` is replaced (atomically);
  ///   without it an existing output is refused (``BundleIOError/outputExists``) and left as it is.
  public static func write(members: [(name: String, data: MemberData)], to outputPath: String, replacing: Bool)
    throws(BundleIOError)
  {
    if !replacing && EvidenceFiles.exists(outputPath) {
      // Refused before any work; publishing checks again, atomically.
      throw BundleIOError(path: outputPath, message: "already exists", outputExists: true)
    }
    let temporaryPath = outputPath + ".partial-\(getpid())"
    let fd: Int32
    do {
      fd = try EvidenceFiles.createTemporary(temporaryPath)
    } catch {
      throw BundleIOError(path: temporaryPath, message: error.message)
    }
    do throws(BundleIOError) {
      defer { close(fd) }
      try writeArchive(members: members, to: fd, path: temporaryPath)
      guard fsync(fd) == 0 else {
        throw BundleIOError(path: temporaryPath, message: "fsync failed: \(String(cString: strerror(errno)))")
      }
    } catch {
      unlink(temporaryPath)
      throw error
    }
    do {
      try EvidenceFiles.publish(temporaryPath, as: outputPath, replacing: replacing)
    } catch {
      throw BundleIOError(path: outputPath, message: error.message, outputExists: error.kind == .exists)
    }
  }

  private static func writeArchive(members: [(name: String, data: MemberData)], to fd: Int32, path: String)
    throws(BundleIOError)
  {
    let output = TarOutput(fd: fd, path: path)
    // One read buffer for every member copied from a file.
    let chunk = AlignedBuffer(capacity: 4 << 20)
    for member in members {
      let size = member.data.count
      guard let header = BundleTar.canonicalHeader(name: member.name, size: UInt64(size)) else {
        throw BundleIOError(path: path, message: "member \(member.name) (\(size) bytes) does not fit a ustar header")
      }
      try output.append(header)
      switch member.data {
      case .bytes(let bytes):
        try output.append(bytes)
      case .uncachedFileRange(let sourcePath, let offset, let count):
        if try !copyUncached(sourcePath, offset: offset, count: count, into: output, chunk: chunk) {
          try copyCached(sourcePath, offset: offset, count: count, into: output, chunk: chunk)
        }
      case .fileRange(let sourcePath, let offset, let count):
        try copyCached(sourcePath, offset: offset, count: count, into: output, chunk: chunk)
      }
      try output.appendZeros(BundleTar.paddedSize(size) - size)
    }
    // The end marker: exactly two zero blocks (§2.1), no padding to a record.
    try output.appendZeros(2 * BundleTar.blockSize)
    try output.flush()
  }

  private static func copyCached(
    _ sourcePath: String, offset: Int, count: Int, into output: TarOutput, chunk: AlignedBuffer
  ) throws(BundleIOError) {
    let source = try FileByteSource(path: sourcePath)
    var done = 0
    while done < count {
      let slice = UnsafeMutableRawBufferPointer(start: chunk.pointer, count: min(chunk.capacity, count - done))
      try source.read(into: slice, at: offset + done)
      try output.append(UnsafeRawBufferPointer(slice))
      done += slice.count
    }
  }

  /// Copies an aligned range with direct reads; `false` when the file cannot be read that way
  /// (then nothing was copied and the caller reads it through the cache).
  private static func copyUncached(
    _ sourcePath: String, offset: Int, count: Int, into output: TarOutput, chunk: AlignedBuffer
  ) throws(BundleIOError) -> Bool {
    guard offset % UncachedFile.alignment == 0 else { return false }
    let fd = open(sourcePath, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw BundleIOError(path: sourcePath, message: String(cString: strerror(errno))) }
    defer { close(fd) }
    guard UncachedFile.makeDirect(fd) else { return false }
    var done = 0
    while done < count {
      // Whole aligned blocks are read; the file was padded to them when written.
      let want = UncachedFile.aligned(min(chunk.capacity, count - done))
      let got = pread(fd, chunk.pointer, want, off_t(offset + done))
      if got < 0 {
        if errno == EINTR { continue }
        if done == 0 && errno == EINVAL { return false }
        throw BundleIOError(path: sourcePath, message: "read failed: \(String(cString: strerror(errno)))")
      }
      let usable = min(got, count - done)
      guard usable > 0 else {
        throw BundleIOError(path: sourcePath, message: "ends \(count - done) bytes before its member does")
      }
      try output.append(UnsafeRawBufferPointer(start: chunk.pointer, count: usable))
      done += usable
    }
    return true
  }
}

/// The archive's bytes on their way to the file: gathered in an aligned buffer and written in
/// large pieces around the page cache where the file system allows (the file is synced before it
/// is published anyway, so caching its pages only costs fresh memory; see ``UncachedFile``).
/// A tar is whole 512-byte blocks, so every piece written is a multiple of the device's block.
private final class TarOutput {
  let fd: Int32
  let path: String
  private let buffer = AlignedBuffer(capacity: 4 << 20)
  private var filled = 0
  private var fileOffset = 0
  private var direct: Bool

  init(fd: Int32, path: String) {
    self.fd = fd
    self.path = path
    direct = UncachedFile.makeDirect(fd)
  }

  func append(_ bytes: UnsafeRawBufferPointer) throws(BundleIOError) {
    guard var source = bytes.baseAddress else { return }
    var left = bytes.count
    while left > 0 {
      let step = min(left, buffer.capacity - filled)
      (buffer.pointer + filled).copyMemory(from: source, byteCount: step)
      filled += step
      source += step
      left -= step
      if filled == buffer.capacity { try flush() }
    }
  }

  func append(_ bytes: [UInt8]) throws(BundleIOError) {
    let outcome: Result<Void, BundleIOError> = bytes.withUnsafeBytes { raw in
      do throws(BundleIOError) {
        return .success(try append(raw))
      } catch {
        return .failure(error)
      }
    }
    try outcome.get()
  }

  func appendZeros(_ count: Int) throws(BundleIOError) {
    var left = count
    while left > 0 {
      let step = min(left, buffer.capacity - filled)
      (buffer.pointer + filled).initializeMemory(as: UInt8.self, repeating: 0, count: step)
      filled += step
      left -= step
      if filled == buffer.capacity { try flush() }
    }
  }

  /// Writes what the buffer holds.
  func flush() throws(BundleIOError) {
    var written = 0
    while written < filled {
      let count = pwrite(fd, buffer.pointer + written, filled - written, off_t(fileOffset + written))
      if count < 0 {
        if errno == EINTR { continue }
        // A file system that took O_DIRECT but refuses this write: go on through the cache.
        if errno == EINVAL, direct, UncachedFile.dropDirect(fd) {
          direct = false
          continue
        }
        throw BundleIOError(path: path, message: "write failed: \(String(cString: strerror(errno)))")
      }
      written += count
    }
    fileOffset += filled
    filled = 0
  }
}
