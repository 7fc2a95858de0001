import EvidenceIO
public import Keys
import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Writing key pairs and reading private keys: the half of key files only a signer needs.
extension KeyFiles {
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

  // MARK: - POSIX helpers

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
}
