import EvidenceIO
import Foundation
import Testing

@testable import Manifest

/// Sealing streams a segment file through zstd: the output must be a blob the verifier accepts.
@Suite struct ZstdFileCompressorTests {
  /// Writes `bytes` to a temporary file, compresses it with the file compressor and returns the
  /// compressed bytes and what the compressor reported.
  func compressThroughFiles(_ bytes: [UInt8], maxRatio: UInt64 = 128) throws -> ([UInt8], CompressedFile) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zfc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let inputPath = directory.appendingPathComponent("in").path
    let outputPath = directory.appendingPathComponent("out").path
    try Data(bytes).write(to: URL(fileURLWithPath: inputPath))
    let input = open(inputPath, O_RDONLY)
    let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    defer {
      close(input)
      close(output)
    }
    // A leading byte the compressor must not read as part of the input or overwrite.
    _ = write(output, [0xEE], 1)
    let result = try ZstdFileCompressor.compress(input: input, size: bytes.count, output: output, maxRatio: maxRatio)
    let written = [UInt8](try Data(contentsOf: URL(fileURLWithPath: outputPath)))
    #expect(written.first == 0xEE)
    return (Array(written.dropFirst()), result)
  }

  @Test(arguments: [0, 1, 1000, 300_000, 1_500_000])
  func roundTripsWithContentSizeAndDigest(size: Int) throws {
    var generator = SystemRandomNumberGenerator()
    // Compressible but not trivial: random words from a small alphabet.
    let bytes = (0..<size).map { _ in UInt8.random(in: 0x61...0x68, using: &generator) }
    let (compressed, result) = try compressThroughFiles(bytes)
    #expect(result.size == compressed.count)
    #expect(result.sha256 == SHA256Digest.hex(of: compressed))
    #expect(try Zstd.decompress(compressed, maxOutputBytes: size) == bytes)
    // Frame_Content_Size is set: the frame header declares the size (descriptor bit 5 or FCS flag).
    #expect(compressed.starts(with: [0x28, 0xB5, 0x2F, 0xFD]))
  }

  @Test func repetitiveDataStaysWithinTheRatioLimit() throws {
    let bytes = [UInt8](repeating: 0x41, count: 4 << 20)
    let (compressed, result) = try compressThroughFiles(bytes)
    #expect(UInt64(bytes.count) <= 128 * UInt64(compressed.count))
    #expect(result.size == compressed.count)
    #expect(result.sha256 == SHA256Digest.hex(of: compressed))
    #expect(try Zstd.decompress(compressed, maxOutputBytes: bytes.count) == bytes)
  }

  @Test func aShortInputFileIsAnError() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zfc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let inputPath = directory.appendingPathComponent("in").path
    try Data([1, 2, 3]).write(to: URL(fileURLWithPath: inputPath))
    let input = open(inputPath, O_RDONLY)
    let output = open(directory.appendingPathComponent("out").path, O_WRONLY | O_CREAT, 0o600)
    defer {
      close(input)
      close(output)
    }
    #expect(throws: ZstdError.self) {
      try ZstdFileCompressor.compress(input: input, size: 10, output: output, maxRatio: 128)
    }
  }
}
