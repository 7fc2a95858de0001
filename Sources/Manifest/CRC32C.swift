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
}
