import EvidenceIO
import Foundation
import Manifest
import Testing

/// zstd frames written by hand (RFC 8878), for inputs no compressor is asked to make: huge
/// outputs from a few bytes and oversized windows.
enum HandMadeZstd {
  static let magic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

  /// A frame without content size or checksum whose window is 2^`windowLog` bytes, holding
  /// `count` copies of `byte` as RLE blocks (4 bytes per 128 KiB of output).
  static func rleFrame(byte: UInt8, count: Int, windowLog: Int = 17) -> [UInt8] {
    // Frame header descriptor 0: no content size, not single-segment, no checksum, no dictionary;
    // then the window descriptor: exponent (log - 10) in bits 3-7, mantissa 0.
    var out = magic + [0x00, UInt8((windowLog - 10) << 3)]
    let maxBlock = min(128 << 10, 1 << windowLog)
    var left = count
    repeat {
      let size = min(maxBlock, left)
      left -= size
      // Block header: bit 0 last block, bits 1-2 type (1 = RLE), bits 3-23 the regenerated size.
      let header = UInt32(left == 0 ? 1 : 0) | 1 << 1 | UInt32(size) << 3
      out += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF), byte]
    } while left > 0
    return out
  }

  /// A skippable frame (magic 0x184D2A50..5F) carrying `payload`.
  static func skippableFrame(_ payload: [UInt8]) -> [UInt8] {
    let size = UInt32(payload.count)
    return [0x50, 0x2A, 0x4D, 0x18] + (0..<4).map { UInt8(truncatingIfNeeded: size >> (8 * $0)) } + payload
  }
}

/// Feeds `input` to a fresh decompressor in pieces of `pieceSize` and returns the output, or the
/// first error (from `decompress` or `finish`) with what was produced before it.
private func stream(
  _ input: [UInt8], maxOutputBytes: Int, pieceSize: Int = .max
) -> (output: [UInt8], error: ZstdError?, decompressor: ZstdStreamDecompressor?) {
  var output: [UInt8] = []
  let decompressor: ZstdStreamDecompressor
  do throws(ZstdError) {
    decompressor = try ZstdStreamDecompressor(maxOutputBytes: maxOutputBytes)
  } catch {
    return ([], error, nil)
  }
  do throws(ZstdError) {
    var offset = 0
    while offset < input.count {
      let end = offset + min(pieceSize, input.count - offset)
      var failure: ZstdError?
      input[offset..<end].withUnsafeBytes { piece in
        do throws(ZstdError) {
          try decompressor.decompress(piece) { output.append(contentsOf: $0) }
        } catch {
          failure = error
        }
      }
      if let failure { throw failure }
      offset = end
    }
    try decompressor.finish()
    return (output, nil, decompressor)
  } catch {
    return (output, error, decompressor)
  }
}

/// Varied, compressible content: counters and words, so the compressor emits real sequences.
private func sampleContent(_ count: Int) -> [UInt8] {
  var out: [UInt8] = []
  out.reserveCapacity(count)
  var index = 0
  while out.count < count {
    out += Array("span \(index) attr=\(index * 7919 % 1000) status=ok;".utf8)
    index += 1
  }
  return Array(out.prefix(count))
}

@Suite struct ZstdStreamTests {
  @Test(arguments: [1, 7, 4096, Int.max])
  func framesFromTheCompressorDecodeInPiecesOfAnySize(pieceSize: Int) throws {
    let content = sampleContent(300_000)
    let compressed = try Zstd.compress(content)
    let result = stream(compressed, maxOutputBytes: content.count, pieceSize: pieceSize)
    #expect(result.error == nil)
    #expect(result.output == content)
    #expect(result.decompressor?.consumedBytes == compressed.count)
    #expect(result.decompressor?.producedBytes == content.count)
  }

  @Test func concatenatedAndSkippableFramesAreOneStream() throws {
    let first = sampleContent(50_000)
    let second = Array("second frame".utf8)
    let input =
      try Zstd.compress(first) + HandMadeZstd.skippableFrame(Array("ignored".utf8)) + Zstd.compress(second)
      + Zstd.storedFrame(first[0..<1000])
    for pieceSize in [1, 13, Int.max] {
      let result = stream(input, maxOutputBytes: 1 << 20, pieceSize: pieceSize)
      #expect(result.error == nil, "pieces of \(pieceSize)")
      #expect(result.output == first + second + first[0..<1000], "pieces of \(pieceSize)")
    }
  }

  @Test func outputExactlyAtTheCapPassesAndOneByteMoreDoesNot() throws {
    let content = sampleContent(100_000)
    let compressed = try Zstd.compress(content)
    #expect(stream(compressed, maxOutputBytes: content.count).error == nil)
    #expect(stream(compressed, maxOutputBytes: .max).output == content)
    #expect(stream(compressed, maxOutputBytes: -1).error?.kind == .outputLimitExceeded)
    let over = stream(compressed, maxOutputBytes: content.count - 1)
    #expect(over.error?.kind == .outputLimitExceeded)
    #expect(over.output.count <= content.count - 1)
    #expect(over.output == Array(content.prefix(over.output.count)))
  }

  @Test func aGibibyteBombStopsAtTheCapAfterReadingAFewBytes() throws {
    let cap = 4 << 20
    let bomb = HandMadeZstd.rleFrame(byte: 0, count: 1 << 30)
    #expect(bomb.count < 40 << 10)
    // The hand-made frame is valid zstd: the one-shot decoder agrees on a small one.
    let small = try Zstd.decompress(HandMadeZstd.rleFrame(byte: 7, count: 300_000), maxOutputBytes: 300_000)
    #expect(small == [UInt8](repeating: 7, count: 300_000))

    let decompressor = try ZstdStreamDecompressor(maxOutputBytes: cap)
    var handedOut = 0
    var largestPiece = 0
    var thrown: ZstdError?
    bomb.withUnsafeBytes { input in
      do throws(ZstdError) {
        try decompressor.decompress(input) { piece in
          handedOut += piece.count
          largestPiece = max(largestPiece, piece.count)
        }
      } catch {
        thrown = error
      }
    }
    #expect(thrown?.kind == .outputLimitExceeded)
    #expect(handedOut <= cap)
    #expect(decompressor.producedBytes <= cap + 1)
    #expect(largestPiece <= ZstdStreamDecompressor.outputStep)
    // About one 4-byte RLE block per 128 KiB of output was read, not the whole 32 KiB bomb.
    #expect(decompressor.consumedBytes < 1024)
    // The failure sticks: more input and finish() report it again without decoding.
    #expect(throws: ZstdError.self) {
      try bomb.withUnsafeBytes { input in try decompressor.decompress(input) { _ in Issue.record("output") } }
    }
    #expect { try decompressor.finish() } throws: { ($0 as? ZstdError)?.kind == .outputLimitExceeded }
  }

  @Test func aCompressorMadeBombIsRefusedToo() throws {
    let zeros = [UInt8](repeating: 0, count: 32 << 20)
    let bomb = try Zstd.compress(zeros)
    let result = stream(bomb, maxOutputBytes: 1 << 20, pieceSize: 4096)
    #expect(result.error?.kind == .outputLimitExceeded)
    #expect(result.output.count <= 1 << 20)
  }

  @Test func aFrameDeclaringAGibibyteWindowIsRefusedAtItsHeader() throws {
    let frame = HandMadeZstd.rleFrame(byte: 1, count: 10, windowLog: 30)
    let result = stream(frame, maxOutputBytes: 1 << 20)
    #expect(result.error?.kind == .windowTooLarge)
    #expect(result.error?.message.contains("2^27") == true)
    #expect(result.output.isEmpty)
    // 2^27 itself is allowed.
    let largest = stream(HandMadeZstd.rleFrame(byte: 1, count: 10, windowLog: 27), maxOutputBytes: 1 << 20)
    #expect(largest.error == nil)
    #expect(largest.output == [UInt8](repeating: 1, count: 10))
  }

  @Test func corruptDataIsRefused() throws {
    let notZstd = stream(Array("this is not zstd at all".utf8), maxOutputBytes: 1 << 20)
    #expect(notZstd.error?.kind == .corrupt)
    #expect(notZstd.error?.message.hasPrefix("zstd: ") == true)

    // Flip a byte of the checksum: every byte decodes, then the frame fails its check.
    var flipped = try Zstd.compress(sampleContent(10_000))
    flipped[flipped.count - 1] ^= 0x55
    #expect(stream(flipped, maxOutputBytes: 1 << 20).error?.kind == .corrupt)
  }

  @Test func truncatedFramesAndTrailingBytesAreRefused() throws {
    let content = sampleContent(20_000)
    let compressed = try Zstd.compress(content)
    for cut in [1, 4, compressed.count / 2, compressed.count - 5] {
      let result = stream(Array(compressed.dropLast(cut)), maxOutputBytes: 1 << 20, pieceSize: 100)
      #expect(result.error?.kind == .corrupt, "cut \(cut)")
      #expect(result.error?.message.contains("truncated") == true, "cut \(cut)")
    }
    // After a whole frame: the start of another one, cut short, is truncated; other bytes are
    // not a frame at all.
    for start in [Array(HandMadeZstd.magic.prefix(3)), HandMadeZstd.magic, HandMadeZstd.magic + [0x00]] {
      let result = stream(compressed + start, maxOutputBytes: 1 << 20)
      #expect(result.error?.message.contains("truncated") == true, "\(start)")
    }
    for trailing in [[0x01, 0x02, 0x03], Array("trailing garbage".utf8), [UInt8](repeating: 0, count: 8)] {
      let result = stream(compressed + trailing, maxOutputBytes: 1 << 20)
      #expect(result.error?.kind == .corrupt, "\(trailing)")
      #expect(result.error?.message.contains("truncated") == false, "\(trailing)")
    }
  }

  @Test func noInputIsNoFrame() throws {
    let decompressor = try ZstdStreamDecompressor(maxOutputBytes: 100)
    try [UInt8]().withUnsafeBytes { empty in try decompressor.decompress(empty) { _ in } }
    #expect { try decompressor.finish() } throws: { ($0 as? ZstdError)?.message.contains("empty") == true }
  }
}
