import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reading and writing key files: `NAME.key` (PKCS#8 PEM, mode 0600) and `NAME.pub`
/// (SubjectPublicKeyInfo PEM, mode 0644).
public enum KeyFiles {
  /// Key files are a few hundred bytes; anything far larger is not a key and is not read whole.
  static let maximumKeyFileSize = 64 * 1024

  /// Writes `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub` (mode 0644), creating `directory`
  /// (and its parents, mode 0700) if missing.
  ///
  /// Never overwrites: if either file exists, throws ``SigningError/Code/fileExists`` and writes
  /// nothing. The private key file is created with `O_CREAT|O_EXCL` and mode 0600 from the start,
  /// so it is never readable by others, not even briefly. If anything fails after the first file
  /// was created, the files created here are removed again.
  ///
  /// `name` must be non-empty, contain no `/` or NUL and not start with `.`
  /// (``SigningError/Code/invalidKeyName``).
  public static func writeKeyPair(
    _ key: Ed25519PrivateKey, directory: String, name: String
  ) throws(SigningError) -> (privateKeyPath: String, publicKeyPath: String) {
    guard !name.isEmpty, !name.hasPrefix("."), !name.contains("/"), !name.contains("\0") else {
      throw SigningError(
        .invalidKeyName,
        "invalid key name '\(name)': it must be non-empty, contain no '/' and not start with '.'")
    }
    guard !directory.isEmpty, !directory.contains("\0") else {
      throw SigningError(.io, "invalid output directory '\(directory)'")
    }
    let prefix = directory.hasSuffix("/") ? directory : directory + "/"
    let privatePath = prefix + name + ".key"
    let publicPath = prefix + name + ".pub"

    for path in [privatePath, publicPath] where pathExists(path) {
      throw SigningError(.fileExists, "already exists; refusing to overwrite", path: path)
    }
    try makeDirectories(directory)

    try createFile(privatePath, mode: 0o600, contents: Array(key.pkcs8PEM.utf8))
    do {
      try createFile(publicPath, mode: 0o644, contents: Array(key.publicKey.pem.utf8))
    } catch {
      // Leave no half-written pair behind: the private key alone would look like a usable pair.
      _ = unlink(privatePath)
      throw error
    }
    syncDirectory(directory)
    return (privatePath, publicPath)
  }

  /// Reads a PKCS#8 PEM Ed25519 private key.
  ///
  /// Like ssh, refuses a file whose mode grants any permission to group or others
  /// (``SigningError/Code/keyFileInsecurePermissions``, with the mode in octal); the check is
  /// made on the opened file, so the file checked is the file read.
  public static func loadPrivateKey(path: String) throws(SigningError) -> Ed25519PrivateKey {
    let text = try readKeyFile(path) { mode throws(SigningError) in
      guard mode & 0o077 == 0 else {
        throw SigningError(
          .keyFileInsecurePermissions,
          "private key file is readable by group or others (mode \(octal(mode & 0o7777))); "
            + "chmod 600 it",
          path: path)
      }
    }
    return try Ed25519PrivateKey(pkcs8PEM: text, source: path)
  }

  /// Reads a PEM SubjectPublicKeyInfo Ed25519 public key.
  public static func loadPublicKey(path: String) throws(SigningError) -> Ed25519PublicKey {
    let text = try readKeyFile(path) { _ throws(SigningError) in }
    return try Ed25519PublicKey(pem: text, source: path)
  }

  // MARK: - POSIX helpers

  private static func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
  }

  /// `0644`-style octal, at least four digits.
  static func octal(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }

  private static func pathExists(_ path: String) -> Bool {
    var info = stat()
    // lstat so that a dangling symlink also counts as "exists" (O_EXCL would refuse it anyway).
    return lstat(path, &info) == 0
  }

  /// `mkdir -p`: creates `path` and missing parents with mode 0700 (the directory is about to
  /// hold a private key), each synced into its parent.
  private static func makeDirectories(_ path: String) throws(SigningError) {
    do {
      try EvidenceFiles.makeDirectories(path)
    } catch {
      throw SigningError(.io, error.message, path: error.path)
    }
  }

  /// Creates `path` exclusively with exactly `mode`, writes `contents` and syncs it.
  private static func createFile(
    _ path: String, mode: mode_t, contents: [UInt8]
  ) throws(SigningError) {
    // O_EXCL: never overwrite; with O_NOFOLLOW, never follow a symlink planted at the path.
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    if fd < 0 {
      let code = errno
      if code == EEXIST {
        throw SigningError(.fileExists, "already exists; refusing to overwrite", path: path)
      }
      throw SigningError(.io, "cannot create: \(errnoText(code))", path: path)
    }
    var failure: SigningError?
    // The umask may have removed bits from `mode` (e.g. 0644 → 0600); set exactly what we promise.
    if fchmod(fd, mode) != 0 {
      failure = SigningError(.io, "cannot set mode: \(errnoText(errno))", path: path)
    }
    var written = 0
    while failure == nil && written < contents.count {
      let result = contents.withUnsafeBytes { buffer in
        write(fd, buffer.baseAddress.map { $0 + written }, contents.count - written)
      }
      if result < 0 {
        if errno == EINTR { continue }
        failure = SigningError(.io, "cannot write: \(errnoText(errno))", path: path)
      } else {
        written += result
      }
    }
    if failure == nil && fsync(fd) != 0 {
      failure = SigningError(.io, "cannot sync: \(errnoText(errno))", path: path)
    }
    if close(fd) != 0 && failure == nil {
      failure = SigningError(.io, "cannot close: \(errnoText(errno))", path: path)
    }
    if let failure {
      _ = unlink(path)
      throw failure
    }
  }

  /// Best effort: makes the new directory entries durable. Failure only loses durability on a
  /// crash, which the caller cannot act on, so it is not reported.
  private static func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    _ = close(fd)
  }

  /// Opens `path`, checks it is a regular file of reasonable size, lets `checkMode` inspect its
  /// permission bits, and returns its contents as UTF-8 text.
  private static func readKeyFile(
    _ path: String, checkMode: (UInt32) throws(SigningError) -> Void
  ) throws(SigningError) -> String {
    guard !path.contains("\0") else {
      throw SigningError(.keyFileUnreadable, "path contains a NUL byte", path: path)
    }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      let code = errno
      throw SigningError(.keyFileUnreadable, "cannot open: \(errnoText(code))", path: path)
    }
    defer { _ = close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      let code = errno
      throw SigningError(.keyFileUnreadable, "cannot stat: \(errnoText(code))", path: path)
    }
    guard info.st_mode & 0o170000 == 0o100000 else {
      throw SigningError(.keyFileUnreadable, "not a regular file", path: path)
    }
    try checkMode(UInt32(info.st_mode))
    guard info.st_size <= maximumKeyFileSize else {
      throw SigningError(
        .keyFormat,
        "file is \(info.st_size) bytes; a key file is at most \(maximumKeyFileSize)", path: path)
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = chunk.withUnsafeMutableBytes { buffer in
        read(fd, buffer.baseAddress, buffer.count)
      }
      if count < 0 {
        if errno == EINTR { continue }
        let code = errno
        throw SigningError(.keyFileUnreadable, "cannot read: \(errnoText(code))", path: path)
      }
      if count == 0 { break }
      bytes += chunk[0..<count]
      // The file may grow after fstat; keep the bound.
      guard bytes.count <= maximumKeyFileSize else {
        throw SigningError(
          .keyFormat, "file is larger than \(maximumKeyFileSize) bytes; not a key file",
          path: path)
      }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
      throw SigningError(.keyFormat, "not UTF-8 text (expected a PEM file)", path: path)
    }
    return text
  }
}
