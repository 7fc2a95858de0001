#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reading key files: `NAME.pub` (SubjectPublicKeyInfo PEM, mode 0644) here; writing key pairs
/// and reading `NAME.key` (PKCS#8 PEM, mode 0600) are the `Signing` module's.
public enum KeyFiles {
  /// Key files are a few hundred bytes; anything far larger is not a key and is not read whole.
  package static let maximumKeyFileSize = 64 * 1024

  /// Reads a PEM SubjectPublicKeyInfo Ed25519 public key.
  public static func loadPublicKey(path: String) throws(SigningError) -> Ed25519PublicKey {
    let text = try readKeyFile(path) { _ throws(SigningError) in }
    return try Ed25519PublicKey(pem: text, source: path)
  }

  // MARK: - POSIX helpers

  package static func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
  }

  /// `0644`-style octal, at least four digits.
  package static func octal(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }

  /// Opens `path`, checks it is a regular file of reasonable size, lets `checkMode` inspect its
  /// permission bits, and returns its contents as UTF-8 text.
  package static func readKeyFile(
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
