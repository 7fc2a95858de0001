internal import CZstd

/// Why a zstd operation failed.
public struct ZstdError: Error, CustomStringConvertible, Equatable, Sendable {
  /// What kind of failure this is.
  public enum Kind: Sendable, Equatable {
    /// Not zstd, a corrupt or truncated frame, or skippable/trailing data.
    case corrupt
    /// The output grew past the cap the caller set.
    case outputLimitExceeded
    /// The frame needs a window larger than the format allows (2^27).
    case windowTooLarge
    /// libzstd failed for a reason that is not the input's fault (for example out of memory).
    case library
  }

  /// The kind of failure.
  public var kind: Kind
  /// What libzstd or the checker said.
  public var message: String

  public var description: String { message }
}

/// zstd compression and bounded decompression (BUNDLE-FORMAT.md §6.1, §7).
public enum Zstd {
  /// The largest window a blob may use: 2^27 bytes.
  public static let maxWindowLog: Int32 = 27

  /// Whether `bytes` starts with a zstd frame's magic number (28 b5 2f fd).
  public static func hasFrameMagic(_ bytes: some Collection<UInt8>) -> Bool {
    bytes.starts(with: [0x28, 0xB5, 0x2F, 0xFD])
  }

  /// One frame at level 3 with the content size and checksum, single-threaded, as writers must use.
  public static func compress(_ input: [UInt8]) throws(ZstdError) -> [UInt8] {
    guard let context = ZSTD_createCCtx() else {
      throw ZstdError(kind: .library, message: "zstd: cannot allocate a compression context")
    }
    defer { ZSTD_freeCCtx(context) }
    // ZSTD_CCtx_setParameter returns an error code only for out-of-range values; these are fixed.
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, 3)
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, 0)
    let capacity = ZSTD_compressBound(input.count)
    var output = [UInt8](repeating: 0, count: capacity)
    let written = output.withUnsafeMutableBytes { out in
      input.withUnsafeBytes { inp in
        ZSTD_compress2(context, out.baseAddress, out.count, inp.baseAddress, inp.count)
      }
    }
    if ZSTD_isError(written) != 0 {
      throw ZstdError(kind: .library, message: "zstd: \(String(cString: ZSTD_getErrorName(written)))")
    }
    output.removeSubrange(written...)
    return output
  }

  /// A frame that stores `content` uncompressed in raw blocks, with its content size.
  ///
  /// Used only to keep a blob within the format's 128× ratio limit when data is so repetitive
  /// that level 3 compresses it further (see ``SegmentSealer``). Layout (RFC 8878): magic,
  /// frame header descriptor 0xE0 (8-byte content size, single segment, no checksum), the size
  /// little-endian, then raw blocks of at most 128 KiB, the last one flagged.
  public static func storedFrame(_ content: ArraySlice<UInt8>) -> [UInt8] {
    var out: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0xE0]
    var size = UInt64(content.count)
    for _ in 0..<8 {
      out.append(UInt8(truncatingIfNeeded: size))
      size >>= 8
    }
    let maxBlock = 128 << 10
    var start = content.startIndex
    repeat {
      let end = min(content.endIndex, start + maxBlock)
      let isLast: UInt32 = end == content.endIndex ? 1 : 0
      // Block header: bit 0 last block, bits 1-2 type (0 = raw), bits 3-23 size.
      let header = isLast | UInt32(end - start) << 3
      out.append(contentsOf: [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF)])
      out.append(contentsOf: content[start..<end])
      start = end
    } while start < content.endIndex
    return out
  }

  /// Decompresses all frames of `input` into one array, refusing output beyond `maxOutputBytes`.
  public static func decompress(_ input: [UInt8], maxOutputBytes: Int) throws(ZstdError) -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity(min(maxOutputBytes, max(input.count * 4, 1024)))
    var failure: ZstdError?
    input.withUnsafeBytes { raw in
      do throws(ZstdError) {
        try decompress(raw, maxOutputBytes: maxOutputBytes) { chunk in
          output.append(contentsOf: chunk)
        }
      } catch {
        failure = error
      }
    }
    if let failure { throw failure }
    return output
  }

  /// Decompresses all frames of `input`, handing the output to `sink` piece by piece, and
  /// refusing output beyond `maxOutputBytes`.
  ///
  /// The frame structure is checked first: only standard zstd frames, each complete, with a
  /// window of at most 2^27 bytes, and nothing after the last one. Input is then fed at most
  /// 256 bytes per call, so output overshoots the cap by at most one call's worth before the
  /// check stops it (BUNDLE-FORMAT.md §7).
  /// - Returns: the number of bytes produced.
  @discardableResult
  public static func decompress(
    _ input: UnsafeRawBufferPointer,
    maxOutputBytes: Int,
    into sink: (UnsafeRawBufferPointer) -> Void
  ) throws(ZstdError) -> Int {
    try validateFrames(input)
    guard let context = ZSTD_createDCtx() else {
      throw ZstdError(kind: .library, message: "zstd: cannot allocate a decompression context")
    }
    defer { ZSTD_freeDCtx(context) }
    _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, maxWindowLog)
    guard let base = input.baseAddress else { return 0 }
    let chunkSize = 1 << 17
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
    defer { chunk.deallocate() }
    var produced = 0
    var offset = 0
    var lastResult = 1
    while offset < input.count {
      let step = min(256, input.count - offset)
      var inBuffer = ZSTD_inBuffer(src: base + offset, size: step, pos: 0)
      repeat {
        var outBuffer = ZSTD_outBuffer(dst: chunk.baseAddress, size: chunkSize, pos: 0)
        lastResult = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
        if ZSTD_isError(lastResult) != 0 {
          throw ZstdError(
            kind: .corrupt, message: "zstd: \(String(cString: ZSTD_getErrorName(lastResult)))")
        }
        produced += outBuffer.pos
        if produced > maxOutputBytes {
          throw ZstdError(
            kind: .outputLimitExceeded,
            message: "zstd: output exceeds the limit of \(maxOutputBytes) bytes")
        }
        if outBuffer.pos > 0 {
          sink(UnsafeRawBufferPointer(rebasing: chunk[0..<outBuffer.pos]))
        }
        // Keep calling while input remains or the output buffer was filled (more may be pending).
        if inBuffer.pos == inBuffer.size && outBuffer.pos < chunkSize { break }
      } while true
      offset += step
    }
    // ZSTD_decompressStream returns 0 exactly when a frame is complete and fully flushed.
    if lastResult != 0 {
      throw ZstdError(kind: .corrupt, message: "zstd: truncated frame (input ends inside a frame)")
    }
    return produced
  }

  /// Checks that `input` is one or more complete standard zstd frames and nothing else.
  public static func validateFrames(_ input: UnsafeRawBufferPointer) throws(ZstdError) {
    guard let base = input.baseAddress, !input.isEmpty else {
      throw ZstdError(kind: .corrupt, message: "zstd: empty input (no frame)")
    }
    var offset = 0
    while offset < input.count {
      let remaining = UnsafeRawBufferPointer(start: base + offset, count: input.count - offset)
      guard hasFrameMagic(remaining) else {
        throw ZstdError(
          kind: .corrupt,
          message: "zstd: no zstd frame at byte \(offset) (skippable frame or trailing data)")
      }
      var header = ZSTD_frameHeader()
      let headerResult = ZSTD_getFrameHeader(&header, remaining.baseAddress, remaining.count)
      if headerResult != 0 {
        throw ZstdError(kind: .corrupt, message: "zstd: truncated or invalid frame header at byte \(offset)")
      }
      if header.windowSize > UInt64(1) << UInt64(maxWindowLog) {
        throw ZstdError(
          kind: .windowTooLarge,
          message: "zstd: frame at byte \(offset) needs a \(header.windowSize)-byte window (max 2^27)")
      }
      let frameSize = ZSTD_findFrameCompressedSize(remaining.baseAddress, remaining.count)
      if ZSTD_isError(frameSize) != 0 {
        throw ZstdError(
          kind: .corrupt,
          message: "zstd: frame at byte \(offset): \(String(cString: ZSTD_getErrorName(frameSize)))")
      }
      offset += frameSize
    }
  }
}
