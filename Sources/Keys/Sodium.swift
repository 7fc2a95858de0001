internal import CSodium

/// Gate for every libsodium call: `sodium_init()` must have run once before any other function
/// (it picks the CPU-specific implementations and seeds the RNG).
package enum Sodium {
  /// Evaluated once, thread-safely, on first use (Swift's lazy static initialisation).
  /// `sodium_init()` returns 0 on first success, 1 if already initialised, -1 on failure.
  private static let initialized: Bool = sodium_init() >= 0

  /// Ensures libsodium is initialised. Failure means the process cannot get randomness or
  /// set up libsodium at all, which no input can cause, so it stops the process.
  package static func ensureInitialized() {
    precondition(initialized, "libsodium: sodium_init() failed")
  }

  /// Calls `body` with a pointer to `bytes` that is never null, even for an empty array (which
  /// may have no storage), because libsodium expects a valid pointer even when it reads 0 bytes.
  package static func withNonNullPointer<R>(
    _ bytes: [UInt8], _ body: (UnsafePointer<UInt8>) -> R
  ) -> R {
    bytes.withUnsafeBufferPointer { buffer in
      if let base = buffer.baseAddress { return body(base) }
      let zero: UInt8 = 0
      return withUnsafePointer(to: zero) { body($0) }
    }
  }
}
