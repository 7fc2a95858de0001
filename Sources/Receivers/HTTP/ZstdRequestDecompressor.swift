internal import EvidenceIO
import Ingest
internal import Manifest
internal import NIOCore
internal import NIOHTTP1

/// Inflates `Content-Encoding: zstd` request bodies on their way to ``OTLPHTTPHandler``, the way
/// `NIOHTTPRequestDecompressor` (next to it in the pipeline) inflates gzip and deflate.
///
/// Only requests ``OTLPHTTPProtocol/contentCoding(_:)`` classifies as `zstd` are touched, so the
/// handler accepts a zstd body exactly when this inflates it; every other request passes
/// through unchanged. Like NIO's decompressor it leaves the head as the client sent it: the
/// handler keeps `Content-Encoding` to tell an encoded body from an identity one, and reads
/// `Content-Length` as the size on the wire (a first in-flight reservation and an early 413),
/// counting the inflated bytes as they arrive.
///
/// Body pieces are inflated as they arrive into pieces of at most ``flushBytes`` (plus one
/// ``ZstdStreamDecompressor/outputStep``), never the whole body at once. The output is capped
/// at the request limit; on any failure a ``ZstdRequestBodyError`` goes down the pipeline once,
/// the rest of that body is dropped, and its `.end` still passes so the handler's phases stay in
/// step.
final class ZstdRequestDecompressor: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias InboundOut = HTTPServerRequestPart

  /// Inflated output is passed on once this much has gathered from one inbound piece, so a small
  /// piece that inflates a lot does not sit in one buffer.
  static let flushBytes = 64 << 10

  private enum State {
    /// Not a zstd request (or between requests).
    case passThrough
    case inflating(ZstdStreamDecompressor)
    /// The error was reported; the rest of the body is dropped.
    case failed
  }

  private let maxOutputBytes: Int
  private var state: State = .passThrough

  /// A decompressor refusing bodies that inflate past `maxOutputBytes` (the request limit).
  init(maxOutputBytes: Int) {
    self.maxOutputBytes = maxOutputBytes
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    // Frees libzstd's context (and its window) with the connection, not at the next request.
    state = .passThrough
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head):
      state = .passThrough
      var failure: ZstdError?
      if OTLPHTTPProtocol.contentCoding(head.headers) == .compressed("zstd") {
        do throws(ZstdError) {
          state = .inflating(try ZstdStreamDecompressor(maxOutputBytes: maxOutputBytes))
        } catch {
          state = .failed
          failure = error
        }
      }
      context.fireChannelRead(data)
      // After the head, so the handler answers it as the request it has just accepted.
      if let failure { context.fireErrorCaught(ZstdRequestBodyError(cause: failure)) }
    case .body(let buffer):
      switch state {
      case .passThrough: context.fireChannelRead(data)
      case .failed: break
      case .inflating(let decompressor): inflate(buffer, with: decompressor, context: context)
      }
    case .end:
      if case .inflating(let decompressor) = state {
        do throws(ZstdError) {
          try decompressor.finish()
        } catch {
          context.fireErrorCaught(ZstdRequestBodyError(cause: error))
        }
      }
      state = .passThrough
      context.fireChannelRead(data)
    }
  }

  private func inflate(_ buffer: ByteBuffer, with decompressor: ZstdStreamDecompressor, context: ChannelHandlerContext)
  {
    let allocator = context.channel.allocator
    var output = allocator.buffer(capacity: 0)
    let failure = buffer.withUnsafeReadableBytes { input -> ZstdError? in
      do throws(ZstdError) {
        try decompressor.decompress(input) { piece in
          output.writeBytes(piece)
          if output.readableBytes >= Self.flushBytes {
            context.fireChannelRead(wrapInboundOut(.body(output)))
            output = allocator.buffer(capacity: 0)
          }
        }
        return nil
      } catch {
        return error
      }
    }
    if let failure {
      state = .failed
      context.fireErrorCaught(ZstdRequestBodyError(cause: failure))
    } else if output.readableBytes > 0 {
      context.fireChannelRead(wrapInboundOut(.body(output)))
    }
  }
}

@available(*, unavailable)
extension ZstdRequestDecompressor: Sendable {}

/// A `Content-Encoding: zstd` body that could not be inflated.
struct ZstdRequestBodyError: Error, CustomStringConvertible {
  var cause: ZstdError

  var description: String { cause.message }

  /// The answer, as for gzip: 413 when the body inflates past `limit`, 400 for data that is not
  /// acceptable zstd (corrupt, truncated, trailing bytes, a window over 2^27), 500 when libzstd
  /// itself failed. Always closing: the rest of the body would have to be read to keep the
  /// connection.
  func rejection(limit: Int) -> OTLPHTTPRejection {
    switch cause.kind {
    case .outputLimitExceeded:
      return OTLPHTTPRejection(
        RejectedRequest(.payloadTooLarge, "decompressed body exceeds the limit of \(limit) bytes"),
        closeConnection: true)
    case .corrupt, .windowTooLarge:
      return OTLPHTTPRejection(
        RejectedRequest(.malformed, "Content-Encoding: the body is not valid zstd data (\(cause.message))"),
        closeConnection: true)
    case .library:
      return OTLPHTTPRejection(
        RejectedRequest(.internalError, "cannot decompress the zstd body (\(cause.message))"), closeConnection: true)
    }
  }
}
