internal import CZstd
import Manifest

#if canImport(Glibc)
  import Glibc
#endif

/// What ``ZstdFileCompressor`` wrote.
public struct CompressedFile: Sendable, Equatable {
  /// Bytes written to the output.
  public var size: Int
  /// Lowercase hex SHA-256 of those bytes.
  public var sha256: String
}

/// Compresses a file into another in bounded memory (one compression context and two 256 KiB
/// buffers, whatever the file's size), hashing the output as it is written: sealing a journal
/// segment must not hold the segment and its compressed copy in memory, since capture's memory
/// bound has to hold while segments are sealed.
///
/// The output follows BUNDLE-FORMAT.md §6.1 as ``Zstd/compress(_:)`` does: one level-3 frame
/// with the content size and checksum, single-threaded. When the data is so repetitive that the
/// frame would exceed `maxRatio`, the file is compressed again with its last `size / maxRatio +
/// 1` bytes in a second, stored frame (as ``SegmentSealer`` does in memory), so a blob never
/// fails the verifier's ratio limit.
public enum ZstdFileCompressor {
  static let chunkSize = 256 << 10

  /// Compresses the first `size` bytes of `input` (read with `pread`, so its offset does not
  /// matter) into `output` (written from its current position).
  public static func compress(input: Int32, size: Int, output: Int32, maxRatio: UInt64) throws(ZstdError)
    -> CompressedFile
  {
    let start = lseek(output, 0, SEEK_CUR)
    guard start >= 0 else { throw ioError("cannot find the output position") }
    var hasher = SHA256Hasher()
    var written = try compressFrame(input: input, range: 0..<size, output: output, hasher: &hasher)
    if UInt64(size) > maxRatio * UInt64(written) {
      let rawCount = min(size, size / Int(maxRatio) + 1)
      let split = size - rawCount
      guard ftruncate(output, start) == 0, lseek(output, start, SEEK_SET) == start else {
        throw ioError("cannot rewind the output")
      }
      hasher = SHA256Hasher()
      written = split > 0 ? try compressFrame(input: input, range: 0..<split, output: output, hasher: &hasher) : 0
      written += try storeFrame(input: input, range: split..<size, output: output, hasher: &hasher)
    }
    return CompressedFile(size: written, sha256: Hex.encode(hasher.finalize()))
  }

  private static func compressFrame(
    input: Int32, range: Range<Int>, output: Int32, hasher: inout SHA256Hasher
  ) throws(ZstdError) -> Int {
    let context = try Zstd.evidenceCompressionContext()
    defer { ZSTD_freeCCtx(context) }
    // The pledged size puts Frame_Content_Size in the header, as the one-shot API does.
    let pledged = ZSTD_CCtx_setPledgedSrcSize(context, UInt64(range.count))
    if ZSTD_isError(pledged) != 0 { throw libraryError(pledged) }
    var inBuffer = [UInt8](repeating: 0, count: chunkSize)
    var outBuffer = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
    var offset = range.lowerBound
    var total = 0
    repeat {
      let want = min(chunkSize, range.upperBound - offset)
      let got = try readFully(input, into: &inBuffer, count: want, at: offset)
      guard got == want else {
        throw ioError("the file ended at byte \(offset + got), expected \(range.upperBound)", code: 0)
      }
      offset += got
      let directive = offset == range.upperBound ? ZSTD_e_end : ZSTD_e_continue
      var consumed = 0
      while true {
        var produced = 0
        let remaining = inBuffer.withUnsafeBytes { source in
          outBuffer.withUnsafeMutableBytes { target in
            var inState = ZSTD_inBuffer(src: source.baseAddress, size: got, pos: consumed)
            var outState = ZSTD_outBuffer(dst: target.baseAddress, size: target.count, pos: 0)
            // Returns an error code, or (with ZSTD_e_end) how much is left to flush: 0 when the
            // frame is complete.
            let result = ZSTD_compressStream2(context, &outState, &inState, directive)
            consumed = inState.pos
            produced = outState.pos
            return result
          }
        }
        if ZSTD_isError(remaining) != 0 { throw libraryError(remaining) }
        if produced > 0 {
          try writeAndHash(output, outBuffer, count: produced, hasher: &hasher)
          total += produced
        }
        let done = directive == ZSTD_e_end ? remaining == 0 : consumed == got
        if done { break }
      }
    } while offset < range.upperBound
    return total
  }

  /// Writes `range` of the input as a stored (raw-block) frame.
  private static func storeFrame(
    input: Int32, range: Range<Int>, output: Int32, hasher: inout SHA256Hasher
  ) throws(ZstdError) -> Int {
    var tail = [UInt8](repeating: 0, count: range.count)
    let got = try readFully(input, into: &tail, count: range.count, at: range.lowerBound)
    guard got == range.count else { throw ioError("the file ended before byte \(range.upperBound)", code: 0) }
    let frame = Zstd.storedFrame(tail[...])
    try writeAndHash(output, frame, count: frame.count, hasher: &hasher)
    return frame.count
  }

  private static func readFully(_ fd: Int32, into buffer: inout [UInt8], count: Int, at offset: Int)
    throws(ZstdError) -> Int
  {
    var done = 0
    var failure: Int32 = 0
    buffer.withUnsafeMutableBytes { raw in
      while done < count {
        let got = pread(fd, raw.baseAddress.map { $0 + done }, count - done, off_t(offset + done))
        if got < 0 {
          if errno == EINTR { continue }
          failure = errno
          return
        }
        if got == 0 { return }
        done += got
      }
    }
    if failure != 0 { throw ioError("read failed", code: failure) }
    return done
  }

  private static func writeAndHash(_ fd: Int32, _ bytes: [UInt8], count: Int, hasher: inout SHA256Hasher)
    throws(ZstdError)
  {
    var failure: Int32 = 0
    bytes.withUnsafeBytes { raw in
      let part = UnsafeRawBufferPointer(rebasing: raw[0..<count])
      hasher.update(part)
      var done = 0
      while done < count {
        let written = write(fd, part.baseAddress.map { $0 + done }, count - done)
        if written < 0 {
          if errno == EINTR { continue }
          failure = errno
          return
        }
        done += written
      }
    }
    if failure != 0 { throw ioError("write failed", code: failure) }
  }

  private static func ioError(_ what: String, code: Int32 = errno) -> ZstdError {
    let reason = code != 0 ? ": " + String(cString: strerror(code)) : ""
    return ZstdError(.library, "zstd file compression: \(what)\(reason)")
  }

  private static func libraryError(_ code: Int) -> ZstdError {
    ZstdError(.library, "zstd: \(String(cString: ZSTD_getErrorName(code)))")
  }
}
