internal import Foundation
import Ingest
internal import Manifest
internal import NIOCore
internal import NIOHPACK
internal import NIOHTTP2
internal import Synchronization

/// In-flight reservations the gate made for calls it let through, handed to the RPC handler by
/// a token in the call's metadata.
///
/// The token is only a key into this table: a client that sends the metadata key itself has it
/// removed by the gate, and a token the table does not hold reserves nothing, so no client can
/// release memory it did not reserve.
final class GRPCReservations: Sendable {
  /// The metadata key carrying the token from the gate to the handler.
  static let metadataKey = "x-stella-inflight-reservation"

  private struct State {
    var nextToken: UInt64 = 1
    var open: [UInt64: Int] = [:]
  }

  private let ingest: any OTLPIngest
  private let state = Mutex(State())

  init(ingest: any OTLPIngest) {
    self.ingest = ingest
  }

  /// Records `bytes` (already reserved with the ingest) and returns the token that names them.
  func register(_ bytes: Int) -> UInt64 {
    state.withLock { state in
      let token = state.nextToken
      state.nextToken &+= 1
      state.open[token] = bytes
      return token
    }
  }

  /// Hands the reservation named by `token` to the caller, who releases it; `nil` when there is
  /// none (never made, or already taken or cancelled).
  func take(_ token: UInt64) -> Int? {
    state.withLock { $0.open.removeValue(forKey: token) }
  }

  /// Releases the reservation if no handler took it (the stream ended before its call ran).
  func cancel(_ token: UInt64) {
    if let bytes = take(token), bytes > 0 { ingest.releaseInFlight(bytes) }
  }
}

/// Reserves a gRPC call's in-flight memory from the message's length prefix, before the message
/// is buffered (twice the message: see ``reservation(forMessageLength:)``), and refuses the call with `RESOURCE_EXHAUSTED` (and `RetryInfo`) when the bound
/// has no room for it: gRPC's own stream handler would otherwise buffer the whole message (up
/// to the request limit) before any of our code runs, so a flood of large calls could hold many
/// times the bound.
///
/// Sits first in each HTTP/2 stream channel. It holds back the request headers until the first
/// five bytes of the body (the gRPC message prefix: a compression flag and a big-endian length)
/// have arrived, then either forwards everything with a reservation token added to the
/// metadata, or answers trailers-only and resets the stream without gRPC ever seeing the call.
/// Messages over the request limit are forwarded unreserved: gRPC refuses those from the prefix
/// itself.
final class GRPCInFlightGate: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias InboundOut = HTTP2Frame.FramePayload
  typealias OutboundOut = HTTP2Frame.FramePayload

  private enum Phase {
    case awaitingHeaders
    /// Headers and the frames after them, held until the message prefix is complete.
    case holding(headers: HTTP2Frame.FramePayload.Headers, held: [HTTP2Frame.FramePayload], prefix: [UInt8])
    case passing(token: UInt64?)
    case refused
  }

  private let ingest: any OTLPIngest
  private let reservations: GRPCReservations
  private let retryAfterSeconds: Int
  /// With it, the gate also hands the RPC handler the connection's client certificate identity.
  private let identities: GRPCClientIdentities?
  /// The call's entry in `identities`, until the handler takes it or the stream ends.
  private var identityToken: UInt64?
  private var phase = Phase.awaitingHeaders
  /// Where calls refused here, before gRPC sees them, are counted.
  private let metrics: CaptureMetrics?

  init(
    ingest: any OTLPIngest, reservations: GRPCReservations, retryAfterSeconds: Int,
    identities: GRPCClientIdentities? = nil, metrics: CaptureMetrics? = nil
  ) {
    self.metrics = metrics
    self.ingest = ingest
    self.reservations = reservations
    self.retryAfterSeconds = retryAfterSeconds
    self.identities = identities
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = unwrapInboundIn(data)
    switch phase {
    case .refused:
      return
    case .passing:
      context.fireChannelRead(data)
    case .awaitingHeaders:
      guard case .headers(var headers) = frame else {
        context.fireChannelRead(data)
        return
      }
      headers.headers.remove(name: GRPCReservations.metadataKey)
      headers.headers.remove(name: GRPCClientIdentities.metadataKey)
      // The stream channel's parent is the TCP connection, whose TLS handler verified the
      // certificate; both live on the same event loop, so it can be read here synchronously.
      if let identities, let connection = context.channel.parent,
        let identity = PeerCertificateIdentity.clientIdentity(on: connection)
      {
        let token = identities.register(identity)
        identityToken = token
        headers.headers.add(name: GRPCClientIdentities.metadataKey, value: String(token))
      }
      if headers.endStream {
        phase = .passing(token: nil)
        context.fireChannelRead(wrapInboundOut(.headers(headers)))
      } else {
        phase = .holding(headers: headers, held: [], prefix: [])
      }
    case .holding(let headers, var held, var prefix):
      held.append(frame)
      var endOfRequest = false
      switch frame {
      case .data(let data):
        endOfRequest = data.endStream
        if case .byteBuffer(let buffer) = data.data, prefix.count < 5 {
          prefix += buffer.readableBytesView.prefix(5 - prefix.count)
        }
      case .headers:
        // Trailers from the client end the request; whatever it is, gRPC judges it.
        endOfRequest = true
      default:
        break
      }
      if prefix.count == 5 {
        decide(headers: headers, held: held, prefix: prefix, context: context)
      } else if endOfRequest {
        forward(headers: headers, held: held, token: nil, context: context)
      } else {
        phase = .holding(headers: headers, held: held, prefix: prefix)
      }
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    endStream()
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    endStream()
  }

  /// A reservation the handler never took (the stream was reset first) goes back to the bound.
  private func endStream() {
    if case .passing(let token?) = phase { reservations.cancel(token) }
    if let identityToken { _ = identities?.take(identityToken) }
    identityToken = nil
    phase = .refused
  }

  private func decide(
    headers: HTTP2Frame.FramePayload.Headers, held: [HTTP2Frame.FramePayload], prefix: [UInt8],
    context: ChannelHandlerContext
  ) {
    let length = prefix[1...4].reduce(0) { $0 << 8 | Int($1) }
    guard length > 0, length <= ingest.maxRequestBytes else {
      // gRPC refuses a message over its payload limit from this same prefix, before any
      // handler of ours runs: counted here, where the refusal is known.
      if length > ingest.maxRequestBytes { metrics?.refused(signal: Self.signal(of: headers), reason: .tooLarge) }
      return forward(headers: headers, held: held, token: nil, context: context)
    }
    let reservation = Self.reservation(forMessageLength: length)
    guard ingest.reserveInFlight(reservation) else {
      metrics?.refused(signal: Self.signal(of: headers), reason: .backpressure)
      return refuse(context: context)
    }
    let token = reservations.register(reservation)
    forward(headers: headers, held: held, token: token, context: context)
  }

  private static func signal(of headers: HTTP2Frame.FramePayload.Headers) -> Signal? {
    headers.headers.first(name: ":path").flatMap { OTLPExportService.signal(forPath: $0) }
  }

  /// The in-flight bytes a call with a `length`-byte message holds until its handler runs: the
  /// message twice, since gRPC buffers it whole in a `ByteBuffer` and the service then copies it
  /// into the request body, and both exist while it does (measured: 48 concurrent 11.3 MiB calls
  /// peaked at 4 messages' worth above idle with two calls reserved). The handler gives back
  /// what is more than the body once it has the body (``OTLPExportService``).
  static func reservation(forMessageLength length: Int) -> Int {
    length.multipliedReportingOverflow(by: 2).overflow ? Int.max : length * 2
  }

  private func forward(
    headers: HTTP2Frame.FramePayload.Headers, held: [HTTP2Frame.FramePayload], token: UInt64?,
    context: ChannelHandlerContext
  ) {
    phase = .passing(token: token)
    var headers = headers
    if let token { headers.headers.add(name: GRPCReservations.metadataKey, value: String(token)) }
    context.fireChannelRead(wrapInboundOut(.headers(headers)))
    for frame in held { context.fireChannelRead(wrapInboundOut(frame)) }
  }

  /// Trailers-only `RESOURCE_EXHAUSTED` with `RetryInfo`, the answer OTLP exporters retry after
  /// the given delay; then the stream is reset so the client stops sending the message.
  private func refuse(context: ChannelHandlerContext) {
    phase = .refused
    if let identityToken { _ = identities?.take(identityToken) }
    identityToken = nil
    let message = "capture is over its in-flight memory bound; retry later"
    let details = OTLPExportService.retryInfoStatusDetails(seconds: retryAfterSeconds)
    let trailers: HPACKHeaders = [
      ":status": "200",
      "content-type": "application/grpc",
      "grpc-status": "8",
      "grpc-message": message,
      "retry-after": String(retryAfterSeconds),
      "grpc-status-details-bin": Data(details).base64EncodedString(),
    ]
    context.write(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
    // RST_STREAM with NO_ERROR after a complete response asks the client to stop sending the
    // request without failing the call (RFC 9113 §8.1); closing the channel instead would reset
    // with CANCEL, which clients report as CANCELLED rather than the status just sent.
    context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil)
  }
}

@available(*, unavailable)
extension GRPCInFlightGate: Sendable {}
