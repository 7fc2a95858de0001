import FuzzSupport
import Ingest
import Logging
import Manifest
import NIOCore
import NIOEmbedded
import Receivers
import Synchronization

// Fuzz target: arbitrary bytes as the byte stream of one OTLP/HTTP connection, through the
// receiver's real per-connection pipeline (raw-byte activity handler, NIO's HTTP/1.1 decoder,
// pipelining and protocol-error handlers, the gzip/deflate and zstd request decompressors and the
// OTLP request handler) on an EmbeddedChannel, with an ingest that runs OTLPRequestDecoder.
//
// The first input byte chooses how the rest is cut into reads (1 to 256 bytes, or all at once), so
// partial heads, split chunk sizes and split gzip and zstd streams are all reached.
//
// Oracles besides "no crash, no ASan report, no hang":
// - everything the server writes is a sequence of HTTP/1.x responses (it starts with `HTTP/1.`);
// - in-flight memory is balanced: after the read deadline passes and the channel is closed, every
//   byte reserved has been released, and never more than was reserved.

/// The in-flight bound (429), like `maxRequestBytes` below (413) small enough for 64 KiB inputs to
/// reach.
private let inFlightBound = 24 << 10

private final class FuzzIngest: OTLPIngest {
  let maxRequestBytes = 16 << 10
  let inFlight = Mutex(0)

  func reserveInFlight(_ bytes: Int) -> Bool {
    if bytes < 0 { fuzzInvariantFailed("negative reservation \(bytes)") }
    return inFlight.withLock { value in
      guard value + bytes <= inFlightBound else { return false }
      value += bytes
      return true
    }
  }

  func releaseInFlight(_ bytes: Int) {
    let now = inFlight.withLock { value in
      value -= bytes
      return value
    }
    if now < 0 { fuzzInvariantFailed("released \(-now) bytes more than were reserved") }
  }

  func admissionProblem() -> RejectedRequest? { nil }

  func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    if body.count > maxRequestBytes {
      fuzzInvariantFailed("export of \(body.count) bytes, over the limit of \(maxRequestBytes)")
    }
    do {
      _ = try OTLPRequestDecoder.decode(body: body, signal: signal, encoding: encoding)
      completion(.success(IngestReceipt(seq: 0, signal: signal, tenant: tenantHeader ?? "default")))
    } catch {
      completion(.failure(error))
    }
  }
}

private let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOTLPHTTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  guard let first = bytes.first else { return 0 }
  let pieceSize = first == 0 ? Int.max : Int(first)
  let input = bytes.dropFirst()

  let ingest = FuzzIngest()
  let channel = EmbeddedChannel()
  do {
    try OTLPHTTPReceiver.configure(channel: channel, ingest: ingest, logger: logger)
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4318)).wait()
  } catch {
    fuzzInvariantFailed("cannot set up the pipeline: \(error)")
  }
  var offset = input.startIndex
  while offset < input.endIndex, channel.isActive {
    let end = input.endIndex - offset > pieceSize ? offset + pieceSize : input.endIndex
    // Errors that reach the end of the pipeline are not findings; the handler answers and closes.
    _ = try? channel.writeInbound(channel.allocator.buffer(bytes: input[offset..<end]))
    channel.embeddedEventLoop.run()
    offset = end
  }
  // Past the read deadline and the idle timeout: stalled requests are abandoned.
  channel.embeddedEventLoop.advanceTime(by: .seconds(61))
  var output: [UInt8] = []
  while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
    output += buffer.readableBytesView
  }
  if !output.isEmpty, !output.starts(with: Array("HTTP/1.".utf8)) {
    fuzzInvariantFailed("output does not start with an HTTP status line: \(output.prefix(40))")
  }
  _ = try? channel.finish()
  let leaked = ingest.inFlight.withLock { $0 }
  if leaked != 0 { fuzzInvariantFailed("\(leaked) bytes of in-flight memory never released") }
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzOTLPHTTP_main`.
@_cdecl("FuzzOTLPHTTP_main")
public func fuzzOTLPHTTPMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  runFuzzer(argc, argv, fuzzOTLPHTTP)
}
