internal import CCrypto

/// SHA-256 through libcrypto's EVP interface, which uses the CPU's SHA extensions where present
/// (libsodium's portable SHA-256 runs at about a quarter of that speed; see BUILD-NOTES.md).
public struct SHA256Hasher: ~Copyable {
  private let context: OpaquePointer?

  /// A hasher ready for ``update(_:)``.
  public init() {
    context = EVP_MD_CTX_new()
    // EVP_DigestInit_ex returns 1 on success; it only fails when out of memory, which
    // `finalize()` then reports as a digest of nil context (see there).
    if let context {
      _ = EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }
  }

  deinit {
    EVP_MD_CTX_free(context)
  }

  /// Adds `bytes` to the digest.
  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard let context, let base = bytes.baseAddress, !bytes.isEmpty else { return }
    _ = EVP_DigestUpdate(context, base, bytes.count)
  }

  /// Adds `bytes` to the digest.
  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// The 32-byte digest of everything added so far.
  public consuming func finalize() -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    if let context {
      digest.withUnsafeMutableBufferPointer { out in
        _ = EVP_DigestFinal_ex(context, out.baseAddress, &length)
      }
    }
    return digest
  }
}

/// One-shot SHA-256 helpers.
public enum SHA256Digest {
  /// The digest of `bytes`.
  public static func of(_ bytes: [UInt8]) -> [UInt8] {
    var hasher = SHA256Hasher()
    hasher.update(bytes)
    return hasher.finalize()
  }

  /// The lowercase hex digest of `bytes`.
  public static func hex(of bytes: [UInt8]) -> String {
    Hex.encode(of(bytes))
  }
}
