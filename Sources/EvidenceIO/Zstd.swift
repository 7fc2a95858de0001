internal import CZstd
public import CodedErrors
import Manifest
import Synchronization

/// Why a zstd operation failed: the code, and what libzstd or the checker said.
public typealias ZstdError = CodedError<ZstdErrorCode>

/// The codes of ``ZstdError``: what kind of failure it is.
public enum ZstdErrorCode: Sendable, Hashable {
  /// Not zstd, a corrupt or truncated frame, or skippable/trailing data.
  case corrupt
  /// The output grew past the cap the caller set.
  case outputLimitExceeded
  /// The frame needs a window larger than the format allows (2^27).
  case windowTooLarge
  /// libzstd failed for a reason that is not the input's fault (for example out of memory).
  case library
}

/// zstd compression and bounded decompression (BUNDLE-FORMAT.md §6.1, §7).
public enum Zstd {
  /// A decompression context for `input` once its frames passed ``validateFrames(_:)``, with the
  /// window capped at ``maxWindowLog``; the caller frees it (`ZSTD_freeDCtx`).
  private static func boundedDecompressionContext(for input: UnsafeRawBufferPointer) throws(ZstdError)
    -> OpaquePointer
  {
    try validateFrames(input)
    guard let context = ZSTD_createDCtx() else {
      throw ZstdError(.library, "zstd: cannot allocate a decompression context")
    }
    _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, maxWindowLog)
    return context
  }

  /// The largest window a blob may use: 2^27 bytes.
  public static let maxWindowLog: Int32 = 27

  /// Whether `bytes` starts with a zstd frame's magic number (28 b5 2f fd).
  public static func hasFrameMagic(_ bytes: some Collection<UInt8>) -> Bool {
    bytes.starts(with: [0x28, 0xB5, 0x2F, 0xFD])
  }

  /// A compression context set up as BUNDLE-FORMAT.md §6.1 asks of writers: level 3, content
  /// size and checksum in the frame, single-threaded. The caller frees it (`ZSTD_freeCCtx`).
  static func evidenceCompressionContext() throws(ZstdError) -> OpaquePointer {
    guard let context = ZSTD_createCCtx() else {
      throw ZstdError(.library, "zstd: cannot allocate a compression context")
    }
    // ZSTD_CCtx_setParameter returns an error code only for out-of-range values; these are fixed.
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, 3)
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, 0)
    return context
  }

  /// One frame at level 3 with the content size and checksum, single-threaded, as writers must use.
  public static func compress(_ input: [UInt8]) throws(ZstdError) -> [UInt8] {
    var output: [UInt8] = []
    let count = try compress(input, into: &output)
    output.removeSubrange(count...)
    return output
  }

  /// The same frame written into `output`, whose storage is reused from call to call (it grows
  /// to the compression bound when smaller); returns how many of its first bytes are the frame.
  public static func compress(_ input: [UInt8], into output: inout [UInt8]) throws(ZstdError) -> Int {
    let context = try CompressionContextPool.shared.take()
    defer { CompressionContextPool.shared.give(context) }
    let bound = ZSTD_compressBound(input.count)
    if output.count < bound {
      // Not zeroed: that would touch, and so fault in, pages compression never writes. Only the
      // bytes zstd writes are ever read (`output[..<count]`).
      output = [UInt8](unsafeUninitializedCapacity: bound) { _, initialized in initialized = bound }
    }
    let written = output.withUnsafeMutableBytes { out in
      input.withUnsafeBytes { inp in
        ZSTD_compress2(context.pointer, out.baseAddress, out.count, inp.baseAddress, inp.count)
      }
    }
    if ZSTD_isError(written) != 0 {
      throw ZstdError(.library, "zstd: \(String(cString: ZSTD_getErrorName(written)))")
    }
    return written
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
    let context = try boundedDecompressionContext(for: input)
    defer { ZSTD_freeDCtx(context) }
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
            .corrupt, "zstd: \(String(cString: ZSTD_getErrorName(lastResult)))")
        }
        produced += outBuffer.pos
        if produced > maxOutputBytes {
          throw ZstdError(
            .outputLimitExceeded, "zstd: output exceeds the limit of \(maxOutputBytes) bytes")
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
      throw ZstdError(.corrupt, "zstd: truncated frame (input ends inside a frame)")
    }
    return produced
  }

  /// A segment decompressed into a new array of its declared size plus one byte (so longer
  /// data is noticed as `.outputLimitExceeded`), for a caller that keeps it; the array asks for
  /// huge pages before it is written (``MemoryAdvice/preferHugePages(_:)``). The returned
  /// array's count is what the frame held, which the caller compares with `declaredSize`.
  public static func decompress(_ input: UnsafeRawBufferPointer, declaredSize: Int) throws(ZstdError) -> [UInt8] {
    var failure: ZstdError?
    let output = [UInt8](unsafeUninitializedCapacity: declaredSize + 1) { buffer, initialized in
      initialized = 0
      MemoryAdvice.preferHugePages(UnsafeMutableRawBufferPointer(buffer))
      do throws(ZstdError) {
        initialized = try decompress(input, into: UnsafeMutableRawBufferPointer(buffer))
      } catch {
        failure = error
      }
    }
    if let failure { throw failure }
    return output
  }

  /// Decompresses all frames of `input` straight into `output`, refusing output that does not
  /// fit, and returns the number of bytes produced.
  ///
  /// For callers that know the size to expect (a blob's `uncompressedSize`): give `output` one
  /// byte more than that, and a result equal to `output.count` means the data is longer than
  /// declared. The frames are checked as in ``decompress(_:maxOutputBytes:into:)``; then the
  /// whole input goes to libzstd at once, so a frame whose content fits in the room left is
  /// decoded in one pass into `output` (no intermediate buffer, no copy), and nothing is ever
  /// written past `output`'s end, whatever the frame headers claim.
  ///
  /// C calls: `ZSTD_createDCtx` returns NULL when it cannot allocate; `ZSTD_decompressStream`
  /// returns an error code (test with `ZSTD_isError`) for corrupt input or a full output, 0
  /// when a frame is complete and flushed, otherwise a hint of the input it still wants.
  /// - Throws: ``ZstdError`` `.corrupt`, `.windowTooLarge`, `.outputLimitExceeded` (the output
  ///   does not fit in `output`), `.library`.
  public static func decompress(
    _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
  ) throws(ZstdError) -> Int {
    let context = try boundedDecompressionContext(for: input)
    defer { ZSTD_freeDCtx(context) }
    guard let inputBase = input.baseAddress else { return 0 }
    let limitExceeded = ZstdError(
      .outputLimitExceeded, "zstd: output exceeds the limit of \(max(output.count - 1, 0)) bytes")
    guard let outputBase = output.baseAddress, !output.isEmpty else { throw limitExceeded }
    var inBuffer = ZSTD_inBuffer(src: inputBase, size: input.count, pos: 0)
    var outBuffer = ZSTD_outBuffer(dst: outputBase, size: output.count, pos: 0)
    while true {
      let before = (inBuffer.pos, outBuffer.pos)
      let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
      if ZSTD_isError(result) != 0 {
        // A frame that declares more content than the room left fails here too.
        if outBuffer.pos == outBuffer.size || ZSTD_getErrorCode(result) == ZSTD_error_dstSize_tooSmall {
          throw limitExceeded
        }
        throw ZstdError(.corrupt, "zstd: \(String(cString: ZSTD_getErrorName(result)))")
      }
      if outBuffer.pos == outBuffer.size { throw limitExceeded }
      // 0 exactly when the last frame is complete and fully flushed.
      if inBuffer.pos == inBuffer.size && result == 0 { return outBuffer.pos }
      // With room left and input left libzstd always moves; no movement means it wants input
      // that is not there.
      if before == (inBuffer.pos, outBuffer.pos) {
        throw ZstdError(.corrupt, "zstd: truncated frame (input ends inside a frame)")
      }
    }
  }

  /// Checks that `input` is one or more complete standard zstd frames and nothing else.
  public static func validateFrames(_ input: UnsafeRawBufferPointer) throws(ZstdError) {
    guard let base = input.baseAddress, !input.isEmpty else {
      throw ZstdError(.corrupt, "zstd: empty input (no frame)")
    }
    var offset = 0
    while offset < input.count {
      let remaining = UnsafeRawBufferPointer(start: base + offset, count: input.count - offset)
      guard hasFrameMagic(remaining) else {
        throw ZstdError(
          .corrupt, "zstd: no zstd frame at byte \(offset) (skippable frame or trailing data)")
      }
      var header = ZSTD_frameHeader()
      let headerResult = ZSTD_getFrameHeader(&header, remaining.baseAddress, remaining.count)
      if headerResult != 0 {
        throw ZstdError(.corrupt, "zstd: truncated or invalid frame header at byte \(offset)")
      }
      if header.windowSize > UInt64(1) << UInt64(maxWindowLog) {
        throw ZstdError(
          .windowTooLarge, "zstd: frame at byte \(offset) needs a \(header.windowSize)-byte window (max 2^27)")
      }
      let frameSize = ZSTD_findFrameCompressedSize(remaining.baseAddress, remaining.count)
      if ZSTD_isError(frameSize) != 0 {
        throw ZstdError(
          .corrupt, "zstd: frame at byte \(offset): \(String(cString: ZSTD_getErrorName(frameSize)))")
      }
      offset += frameSize
    }
  }
}

/// Streaming zstd decompression for data that arrives in pieces (an OTLP/HTTP body sent with
/// `Content-Encoding: zstd`), with the output capped as it is produced.
///
/// Feed every piece to ``decompress(_:into:)`` as it arrives, then call ``finish()`` once the
/// input has ended. Unlike ``Zstd/decompress(_:maxOutputBytes:into:)`` nothing is checked up
/// front (the whole input is never in hand), so libzstd's own checks do the work:
/// - one or more frames back to back; skippable frames are skipped (RFC 8878 §3.1.2 lets a
///   decoder ignore them), anything else between or after frames is corrupt;
/// - a frame whose window exceeds 2^27 bytes is refused when its header is read, before libzstd
///   allocates the window (`ZSTD_d_windowLogMax`), so a few bytes cannot cost gigabytes;
/// - output never passes `maxOutputBytes` by more than one byte: each `ZSTD_decompressStream`
///   call gets at most the room left under the cap plus one byte, and input is fed at most
///   ``inputStep`` bytes per call, so the work done before the cap stops a bomb is bounded too.
///
/// After any error the decompressor stays failed: later calls rethrow the first error, since
/// libzstd's state after an error cannot continue the stream.
///
/// Memory: a decompression context, one ``outputStep``-byte scratch buffer, and libzstd's window
/// for the current frame (at most 2^27 bytes plus one block; the frame's window, for frames
/// made by ordinary encoders a few MiB). Freed when the decompressor is released.
public final class ZstdStreamDecompressor {
  /// The most input handed to one `ZSTD_decompressStream` call.
  public static let inputStep = 16 << 10
  /// The scratch buffer's size, and so the largest piece handed to a sink.
  public static let outputStep = 64 << 10

  /// The cap on the total output.
  public let maxOutputBytes: Int
  /// Output handed to sinks so far.
  public private(set) var producedBytes = 0
  /// Input consumed so far.
  public private(set) var consumedBytes = 0

  private let context: OpaquePointer
  private let scratch: UnsafeMutableRawBufferPointer
  /// The last `ZSTD_decompressStream` result that made progress: 0 exactly when the stream stands
  /// at a frame boundary with everything flushed (the only place it may end).
  private var lastHint = 1
  private var failure: ZstdError?

  /// A decompressor whose total output may not exceed `maxOutputBytes` (negative counts as 0).
  ///
  /// C calls: `ZSTD_createDCtx` returns NULL when it cannot allocate; `ZSTD_DCtx_setParameter`
  /// returns an error code (test with `ZSTD_isError`) only for an unknown parameter or an
  /// out-of-range value, and 27 is within `ZSTD_d_windowLogMax`'s bounds on every platform.
  /// - Throws: ``ZstdError/Kind/library`` when libzstd cannot allocate or configure a context.
  public init(maxOutputBytes: Int) throws(ZstdError) {
    guard let context = ZSTD_createDCtx() else {
      throw ZstdError(.library, "zstd: cannot allocate a decompression context")
    }
    let set = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Zstd.maxWindowLog)
    if ZSTD_isError(set) != 0 {
      ZSTD_freeDCtx(context)
      throw ZstdError(
        .library, "zstd: cannot limit the window: \(String(cString: ZSTD_getErrorName(set)))")
    }
    self.context = context
    self.maxOutputBytes = max(0, maxOutputBytes)
    self.scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.outputStep, alignment: 16)
  }

  deinit {
    // ZSTD_freeDCtx returns 0, or an error code only for a context still in use by a CDict; never here.
    ZSTD_freeDCtx(context)
    scratch.deallocate()
  }

  /// Decompresses `input`, the next piece of the stream, handing output to `sink` in pieces of
  /// at most ``outputStep`` bytes, in order. All of `input` is consumed unless an error is thrown;
  /// a frame may end anywhere inside it or continue in the next piece.
  ///
  /// C call: `ZSTD_decompressStream` returns an error code (test with `ZSTD_isError`; the code
  /// from `ZSTD_getErrorCode`), or 0 when a frame is complete and fully flushed, or else a hint
  /// (> 0) at how much more input the current frame needs. It may hold back the last input
  /// byte until pending output is flushed, so it is called until all input is consumed and the
  /// output buffer was not filled.
  /// - Throws: ``ZstdError/Kind/outputLimitExceeded`` as soon as the output would pass
  ///   ``maxOutputBytes`` (the piece that crossed is not handed to `sink`);
  ///   ``ZstdError/Kind/windowTooLarge`` for a frame needing a window over 2^27 bytes
  ///   (`ZSTD_error_frameParameter_windowTooLarge`); ``ZstdError/Kind/library`` when libzstd
  ///   cannot allocate (`ZSTD_error_memory_allocation`); ``ZstdError/Kind/corrupt`` for anything
  ///   else libzstd refuses (not zstd, bad block, checksum mismatch, trailing data).
  public func decompress(_ input: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) -> Void)
    throws(ZstdError)
  {
    if let failure { throw failure }
    // An empty call would make no progress, and libzstd errors after repeated calls without it.
    guard let base = input.baseAddress, !input.isEmpty else { return }
    var offset = 0
    while true {
      var inBuffer = ZSTD_inBuffer(src: base + offset, size: min(Self.inputStep, input.count - offset), pos: 0)
      // Room for one byte past the cap, so crossing it is seen without decoding further.
      let left = maxOutputBytes - producedBytes
      let room = left < scratch.count ? left + 1 : scratch.count
      var outBuffer = ZSTD_outBuffer(dst: scratch.baseAddress, size: room, pos: 0)
      let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
      if ZSTD_isError(result) != 0 {
        throw fail(Self.error(result, at: consumedBytes + inBuffer.pos))
      }
      offset += inBuffer.pos
      consumedBytes += inBuffer.pos
      if inBuffer.pos > 0 || outBuffer.pos > 0 {
        // A call that moved nothing (only ever the extra call after a full output buffer) reports
        // on the next frame, not yet begun, and must not hide that the last one ended.
        lastHint = result
      }
      if outBuffer.pos > 0 {
        producedBytes += outBuffer.pos
        if producedBytes > maxOutputBytes {
          throw fail(
            ZstdError(
              .outputLimitExceeded, "zstd: output exceeds the limit of \(maxOutputBytes) bytes"))
        }
        sink(UnsafeRawBufferPointer(rebasing: scratch[0..<outBuffer.pos]))
      }
      if offset == input.count && outBuffer.pos < room { return }
    }
  }

  /// Checks that the stream ended cleanly: at least one frame, and the input stopped at a frame
  /// boundary with all output flushed.
  /// - Throws: the first error of ``decompress(_:into:)`` if there was one; else
  ///   ``ZstdError/Kind/corrupt`` for no input at all or input ending inside a frame.
  public func finish() throws(ZstdError) {
    if let failure { throw failure }
    if consumedBytes == 0 {
      throw fail(ZstdError(.corrupt, "zstd: empty input (no frame)"))
    }
    if lastHint != 0 {
      throw fail(
        ZstdError(
          .corrupt, "zstd: truncated frame (input ends inside a frame after \(consumedBytes) bytes)"))
    }
  }

  private func fail(_ error: ZstdError) -> ZstdError {
    failure = error
    return error
  }

  private static func error(_ code: Int, at offset: Int) -> ZstdError {
    let name = String(cString: ZSTD_getErrorName(code))
    switch ZSTD_getErrorCode(code) {
    case ZSTD_error_frameParameter_windowTooLarge:
      return ZstdError(
        .windowTooLarge, "zstd: a frame needs a window larger than 2^\(Zstd.maxWindowLog) bytes (\(name))")
    case ZSTD_error_memory_allocation:
      return ZstdError(.library, "zstd: \(name)")
    default:
      return ZstdError(.corrupt, "zstd: \(name) (near compressed byte \(offset))")
    }
  }
}

@available(*, unavailable)
extension ZstdStreamDecompressor: Sendable {}

/// A compression context of ``Zstd/evidenceCompressionContext()``, owned by whoever took it from
/// the pool (one thread at a time).
final class PooledCompressionContext: @unchecked Sendable {
  let pointer: OpaquePointer

  init(_ pointer: OpaquePointer) { self.pointer = pointer }

  deinit { ZSTD_freeCCtx(pointer) }
}

/// Reuses compression contexts across calls: a new context allocates and clears its level-3
/// tables (a few MiB) on first use, per segment, where a reused one does not.
final class CompressionContextPool: Sendable {
  static let shared = CompressionContextPool()

  /// More would only hold memory: there are two cores, and at most a few sealers at once.
  private static let kept = 4
  private let spare = Mutex<[PooledCompressionContext]>([])

  func take() throws(ZstdError) -> PooledCompressionContext {
    if let context = spare.withLock({ $0.popLast() }) { return context }
    return PooledCompressionContext(try Zstd.evidenceCompressionContext())
  }

  /// Returns `context`; its parameters stay, its session (any failed frame's state) is reset.
  func give(_ context: PooledCompressionContext) {
    ZSTD_CCtx_reset(context.pointer, ZSTD_reset_session_only)
    spare.withLock { spare in
      if spare.count < Self.kept { spare.append(context) }
    }
  }
}
