internal import CSodium

/// Gate for every libsodium call: `sodium_init()` must have run once before any other function
/// (it picks the CPU-specific implementations and seeds the RNG).
enum Sodium {
  /// Evaluated once, thread-safely, on first use (Swift's lazy static initialisation).
  /// `sodium_init()` returns 0 on first success, 1 if already initialised, -1 on failure.
  private static let initialized: Bool = sodium_init() >= 0

  /// Ensures libsodium is initialised. Failure means the process cannot get randomness or
  /// set up libsodium at all, which no input can cause, so it stops the process.
  static func ensureInitialized() {
    precondition(initialized, "libsodium: sodium_init() failed")
  }

  /// SHA-256 of `bytes` (libsodium's portable implementation; only used on tiny inputs).
  static func sha256(_ bytes: [UInt8]) -> [UInt8] {
    ensureInitialized()
    var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
    withNonNullPointer(bytes) { input in
      // Returns 0 always.
      _ = crypto_hash_sha256(&digest, input, UInt64(bytes.count))
    }
    return digest
  }

  /// Calls `body` with a pointer to `bytes` that is never null, even for an empty array (which
  /// may have no storage), because libsodium expects a valid pointer even when it reads 0 bytes.
  static func withNonNullPointer<R>(
    _ bytes: [UInt8], _ body: (UnsafePointer<UInt8>) -> R
  ) -> R {
    bytes.withUnsafeBufferPointer { buffer in
      if let base = buffer.baseAddress { return body(base) }
      let zero: UInt8 = 0
      return withUnsafePointer(to: zero) { body($0) }
    }
  }
}

/// Lowercase hexadecimal, shared by key ids and messages.
enum Hex {
  private static let digits = Array("0123456789abcdef".utf8)

  static func encode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
  }
}
