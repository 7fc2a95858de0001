internal import CCRC32C

/// CRC-32C (Castagnoli), as used by the segment record framing (BUNDLE-FORMAT.md §6.2).
public enum CRC32C {
  /// The CRC-32C of `bytes`; `checksum("123456789") == 0xE306_9283`.
  public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return 0 }
    return stella_crc32c_update(0xFFFF_FFFF, base, bytes.count) ^ 0xFFFF_FFFF
  }

  /// The CRC-32C of `bytes`.
  public static func checksum(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { checksum($0) }
  }

  /// A running CRC-32C, for data that arrives in parts (a record's prefix, then its request):
  /// `start`, then `update` per part, then `finish`.
  public static let start: UInt32 = 0xFFFF_FFFF

  /// Continues `state` over `bytes`.
  public static func update(_ state: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return state }
    return stella_crc32c_update(state, base, bytes.count)
  }

  /// The checksum of everything `state` ran over.
  public static func finish(_ state: UInt32) -> UInt32 { state ^ 0xFFFF_FFFF }
}
