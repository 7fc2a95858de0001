public import CodedErrors
import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A file operation on evidence or another output that failed, naming the path and why.
public typealias FileSafetyError = FileError<FileSafetyErrorCode>

/// The codes of ``FileSafetyError``: what kind of failure it is.
public enum FileSafetyErrorCode: Sendable, Hashable {
  /// The output already exists and the caller did not ask to replace it.
  case exists
  /// The file system is full (`ENOSPC`, `EDQUOT`).
  case full
  /// A secret file that others may read or change, or that another user owns.
  case insecure
  /// Any other file-system failure.
  case io
}

extension FileSafetyError {
  /// The failure `errno` describes now.
  static func system(_ path: String, _ what: String) -> FileSafetyError {
    let code: Kind =
      switch errno {
      case EEXIST: .exists
      case ENOSPC, EDQUOT: .full
      default: .io
      }
    return system(code, path: path, what)
  }
}

/// How every file and directory holding evidence (or derived from it) is made.
///
/// Evidence may hold what a redaction policy kept and what tenants must not see of each other,
/// so files are 0600 and directories 0700 whatever the umask. A file appears under its final
/// name only when complete: it is written to a temporary file created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW` (a symlink planted at the temporary path is never followed),
/// synced, renamed (or hard-linked, when an existing output must not be replaced) into place,
/// and the directory is synced so the new name survives a crash.
public enum EvidenceFiles {
  /// The mode of every evidence file.
  public static let fileMode: UInt32 = 0o600
  /// The mode of every directory made for evidence.
  public static let directoryMode: UInt32 = 0o700

  /// `mkdir -p`: makes `path` and its missing parents with mode 0700, syncing each new
  /// directory's parent. Existing directories are left as they are.
  public static func makeDirectories(_ path: String) throws(FileSafetyError) {
    let trimmed = trimmingTrailingSlashes(path)
    var info = stat()
    if stat(trimmed, &info) == 0 {
      guard info.st_mode & S_IFMT == S_IFDIR else {
        throw FileSafetyError(.io, path: trimmed, "exists and is not a directory")
      }
      return
    }
    let parent = parentDirectory(of: trimmed)
    if parent != trimmed { try makeDirectories(parent) }
    guard mkdir(trimmed, mode_t(directoryMode)) == 0 else {
      // Another process made it meanwhile: fine if it is a directory.
      if errno == EEXIST, stat(trimmed, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { return }
      throw .system(trimmed, "cannot create directory")
    }
    // mkdir's mode went through the umask, which may have removed the owner's bits.
    let fd = open(trimmed, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { throw .system(trimmed, "cannot open the new directory") }
    defer { close(fd) }
    guard fchmod(fd, mode_t(directoryMode)) == 0 else { throw .system(trimmed, "cannot set the new directory's mode") }
    try syncDirectory(parent)
  }

  /// Creates `path`, which must not exist (not even as a symlink), for writing, with exactly
  /// `mode`; returns its descriptor. `append` opens it with `O_APPEND`.
  /// - Throws: ``FileSafetyError`` of kind `.exists` when anything is at `path`.
  public static func createNew(_ path: String, mode: UInt32 = fileMode, append: Bool = false) throws(FileSafetyError)
    -> Int32
  {
    let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | (append ? O_APPEND : 0)
    let fd = open(path, flags, mode_t(mode))
    guard fd >= 0 else { throw .system(path, "cannot create") }
    // The umask can only remove bits: set exactly `mode`.
    guard fchmod(fd, mode_t(mode)) == 0 else {
      let failure = FileSafetyError.system(path, "cannot set its mode")
      close(fd)
      unlink(path)
      throw failure
    }
    return fd
  }

  /// Creates the temporary file `temporary` with ``createNew(_:mode:append:)``, first removing
  /// what a crashed earlier write left there (a symlink planted there is removed, not followed).
  public static func createTemporary(_ temporary: String, mode: UInt32 = fileMode) throws(FileSafetyError) -> Int32 {
    _ = unlink(temporary)
    return try createNew(temporary, mode: mode)
  }

  /// Moves the complete, synced file `temporary` to `path` and syncs the directory.
  ///
  /// With `replacing`, an existing file at `path` is replaced by `rename`, which replaces a
  /// symlink itself and never writes through it. Without, an existing `path` (file, directory
  /// or symlink) is refused with kind `.exists`, atomically: the file is hard-linked to its
  /// name, which fails if the name is taken. `temporary` is gone afterwards either way.
  public static func publish(_ temporary: String, as path: String, replacing: Bool) throws(FileSafetyError) {
    defer { _ = unlink(temporary) }
    if replacing {
      guard rename(temporary, path) == 0 else { throw .system(path, "cannot rename \(temporary) into place") }
    } else if link(temporary, path) != 0 {
      guard [EPERM, ENOTSUP, EOPNOTSUPP, EMLINK].contains(errno) else {
        if errno == EEXIST { throw FileSafetyError(.exists, path: path, "already exists") }
        throw .system(path, "cannot link \(temporary) into place")
      }
      // A file system without hard links: check, then rename (a race here can replace).
      guard !exists(path) else { throw FileSafetyError(.exists, path: path, "already exists") }
      guard rename(temporary, path) == 0 else { throw .system(path, "cannot rename \(temporary) into place") }
    }
    try syncDirectory(of: path)
  }

  /// Writes `bytes` to `path` atomically and durably with exactly `mode`: a temporary file
  /// `path.partial`, fsync, ``publish(_:as:replacing:)``.
  public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: UInt32 = fileMode, replacing: Bool = true)
    throws(FileSafetyError)
  {
    let temporary = path + ".partial"
    let fd = try createTemporary(temporary, mode: mode)
    do throws(FileSafetyError) {
      try writeAll(fd, bytes, path: temporary)
      guard fsync(fd) == 0 else { throw .system(temporary, "fsync failed") }
    } catch {
      close(fd)
      unlink(temporary)
      throw error
    }
    close(fd)
    try publish(temporary, as: path, replacing: replacing)
  }

  /// Writes all of `bytes` to `fd`, retrying short writes and `EINTR`.
  public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(FileSafetyError) {
    var failure: FileSafetyError?
    bytes.withUnsafeBytes { raw in
      var done = 0
      while done < raw.count {
        let written = write(fd, raw.baseAddress.map { $0 + done }, raw.count - done)
        if written < 0 {
          if errno == EINTR { continue }
          failure = .system(path, "write failed")
          return
        }
        done += written
      }
    }
    if let failure { throw failure }
  }

  /// Makes the entries of the directory holding `path` durable (after a create or rename).
  public static func syncDirectory(of path: String) throws(FileSafetyError) {
    try syncDirectory(parentDirectory(of: trimmingTrailingSlashes(path)))
  }

  /// Makes the entries of `directory` durable.
  public static func syncDirectory(_ directory: String) throws(FileSafetyError) {
    let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw .system(directory, "cannot open directory to sync it") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw .system(directory, "directory fsync failed") }
  }

  /// Whether anything (a file, a directory, a symlink, even a dangling one) is at `path`.
  public static func exists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
  }

  /// Reads a secret file (a key): it must be a regular file, not a symlink, of mode exactly
  /// 0600, owned by the user running this process, and at most `maxBytes` long. The checks are
  /// made on the opened file, so the file checked is the file read.
  /// - Throws: kind `.insecure` naming the mode or owner and how to fix it; `.io` otherwise.
  public static func readPrivateFile(_ path: String, maxBytes: Int) throws(FileSafetyError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
      if errno == ELOOP { throw FileSafetyError(.insecure, path: path, "is a symlink; give the file itself") }
      throw .system(path, "cannot open")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .system(path, "cannot stat") }
    guard info.st_mode & S_IFMT == S_IFREG else { throw FileSafetyError(.io, path: path, "is not a regular file") }
    let mode = info.st_mode & 0o7777
    guard mode == 0o600 else {
      throw FileSafetyError(
        .insecure, path: path,
        "has mode \(octal(UInt32(mode))); it must be 0600 (chmod 600 \(path)): others must not read or change a secret")
    }
    guard info.st_uid == geteuid() else {
      throw FileSafetyError(
        .insecure, path: path, "is owned by uid \(info.st_uid), not by the user running this (uid \(geteuid()))")
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count < 0 {
        if errno == EINTR { continue }
        throw .system(path, "cannot read")
      }
      if count == 0 { break }
      bytes += chunk[..<count]
      // Checked while reading: the file may grow after fstat.
      guard bytes.count <= maxBytes else {
        throw FileSafetyError(.io, path: path, "is larger than \(maxBytes) bytes")
      }
    }
    return bytes
  }

  /// `0644`-style octal, four digits.
  public static func octal(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }

  /// `path` without trailing slashes (`/` stays `/`).
  public static func trimmingTrailingSlashes(_ path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    return String(trimmed)
  }

  /// The directory holding `path`: `.` for a bare name, `/` for a top-level name.
  public static func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let parent = path[..<slash]
    return parent.isEmpty ? "/" : String(parent)
  }
}
