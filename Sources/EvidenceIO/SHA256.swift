internal import CCrypto
import Manifest

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

  /// The lowercase hex digest of the bytes in `buffer`.
  public static func hex(of buffer: UnsafeRawBufferPointer) -> String {
    var hasher = SHA256Hasher()
    hasher.update(buffer)
    return Hex.encode(hasher.finalize())
  }

  /// The lowercase hex digest of `count` bytes of `source` from `offset`, read in 4 MiB chunks so
  /// memory stays flat whatever the size (blobs being verified, whole bundle files).
  public static func hex(of source: borrowing some ByteSource & ~Copyable, offset: Int, count: Int)
    throws(BundleIOError) -> String
  {
    let chunkSize = 4 << 20
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: min(chunkSize, max(count, 1)), alignment: 64)
    defer { chunk.deallocate() }
    var hasher = SHA256Hasher()
    var done = 0
    while done < count {
      let step = min(chunk.count, count - done)
      let slice = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<step])
      try source.read(into: slice, at: offset + done)
      hasher.update(UnsafeRawBufferPointer(slice))
      done += step
    }
    return Hex.encode(hasher.finalize())
  }
}

/// HMAC-SHA256 (RFC 2104) through libcrypto's one-shot `HMAC()`.
///
/// Redaction replaces values with their keyed hash, so equal values still correlate across
/// records without the value itself being stored; only a holder of the key can test a guess.
public enum HMACSHA256 {
  /// The 32-byte HMAC-SHA256 of `message` under `key`, or `nil` when libcrypto fails (it only
  /// does when out of memory, or for a key longer than `Int32.max` bytes).
  public static func code(of message: UnsafeRawBufferPointer, key: [UInt8]) -> [UInt8]? {
    guard let keyLength = Int32(exactly: key.count) else { return nil }
    var out = [UInt8](repeating: 0, count: 32)
    var outLength: UInt32 = 0
    // An empty buffer may have no base address; a one-byte stand-in (with length 0) keeps every
    // pointer `HMAC()` gets valid instead of relying on how it treats NULL.
    let standIn: [UInt8] = [0]
    let result = standIn.withUnsafeBytes { standInBytes in
      key.withUnsafeBytes { keyBytes in
        out.withUnsafeMutableBytes { outBytes in
          // Returns the output pointer on success, NULL on failure.
          HMAC(
            EVP_sha256(), keyBytes.baseAddress ?? standInBytes.baseAddress, keyLength,
            (message.baseAddress ?? standInBytes.baseAddress)?.assumingMemoryBound(to: UInt8.self), message.count,
            outBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), &outLength)
        }
      }
    }
    guard result != nil, outLength == 32 else { return nil }
    return out
  }

  /// The 32-byte HMAC-SHA256 of `message` under `key`, or `nil` when libcrypto fails.
  public static func code(of message: [UInt8], key: [UInt8]) -> [UInt8]? {
    message.withUnsafeBytes { code(of: $0, key: key) }
  }

  /// The lowercase hex HMAC-SHA256 of `message` under `key`, or `nil` when libcrypto fails.
  public static func hex(of message: [UInt8], key: [UInt8]) -> String? {
    code(of: message, key: key).map { Hex.encode($0) }
  }
}
