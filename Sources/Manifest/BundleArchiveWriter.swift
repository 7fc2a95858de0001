internal import CArchive

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

  var count: Int {
    switch self {
    case .bytes(let bytes): return bytes.count
    case .fileRange(_, _, let count): return count
    }
  }
}

/// Writes the canonical ustar archive of §2 with libarchive.
///
/// libarchive's ustar writer produces exactly the §2.1 header forms for entries with mode 0644,
/// uid/gid 0, no user/group names and mtime 0; `bytes_in_last_block = 1` stops it padding the
/// file to a 10240-byte record. The archive is written to a temporary file beside the output
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
    guard let archive = archive_write_new() else {
      throw BundleIOError(path: path, message: "libarchive: cannot allocate a writer")
    }
    defer { archive_write_free(archive) }
    func check(_ result: Int32, _ what: String) throws(BundleIOError) {
      // libarchive returns ARCHIVE_OK (0) or ARCHIVE_WARN (-20) on success, ARCHIVE_FAILED (-25)
      // or ARCHIVE_FATAL (-30) on failure; archive_error_string says why.
      if result < ARCHIVE_WARN {
        let reason = archive_error_string(archive).map { String(cString: $0) } ?? "error \(result)"
        throw BundleIOError(path: path, message: "libarchive: \(what): \(reason)")
      }
    }
    try check(archive_write_set_format_ustar(archive), "set ustar format")
    try check(archive_write_add_filter_none(archive), "set no filter")
    // Large blocks mean fewer write calls; with one byte in the last block the output is the
    // same bytes whatever the block size.
    try check(archive_write_set_bytes_per_block(archive, 1 << 20), "set block size")
    try check(archive_write_set_bytes_in_last_block(archive, 1), "set last block size")
    try check(archive_write_open_fd(archive, fd), "open")
    for member in members {
      guard let entry = archive_entry_new() else {
        throw BundleIOError(path: path, message: "libarchive: cannot allocate an entry")
      }
      defer { archive_entry_free(entry) }
      archive_entry_set_pathname(entry, member.name)
      archive_entry_set_size(entry, la_int64_t(member.data.count))
      archive_entry_set_filetype(entry, 0o100000)  // AE_IFREG, a macro Swift cannot see.
      archive_entry_set_perm(entry, 0o644)
      archive_entry_set_mtime(entry, 0, 0)
      archive_entry_set_uid(entry, 0)
      archive_entry_set_gid(entry, 0)
      try check(archive_write_header(archive, entry), "write header of \(member.name)")
      try writeData(member, archive: archive, archivePath: path)
    }
    try check(archive_write_close(archive), "close")
  }

  private static func writeData(_ member: (name: String, data: MemberData), archive: OpaquePointer, archivePath: String)
    throws(BundleIOError)
  {
    func put(_ bytes: UnsafeRawBufferPointer) throws(BundleIOError) {
      guard !bytes.isEmpty else { return }
      let written = archive_write_data(archive, bytes.baseAddress, bytes.count)
      guard written == bytes.count else {
        let reason = archive_error_string(archive).map { String(cString: $0) } ?? "short write"
        throw BundleIOError(path: archivePath, message: "libarchive: data of \(member.name): \(reason)")
      }
    }
    switch member.data {
    case .bytes(let bytes):
      var failure: BundleIOError?
      bytes.withUnsafeBytes { raw in
        do throws(BundleIOError) { try put(raw) } catch { failure = error }
      }
      if let failure { throw failure }
    case .fileRange(let sourcePath, let offset, let count):
      let source = try FileByteSource(path: sourcePath)
      let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
      defer { chunk.deallocate() }
      var done = 0
      while done < count {
        let step = min(chunk.count, count - done)
        let slice = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<step])
        try source.read(into: slice, at: offset + done)
        try put(UnsafeRawBufferPointer(slice))
        done += step
      }
    }
  }
}
