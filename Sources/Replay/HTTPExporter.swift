import Manifest
import NIOCore
import NIOHTTP1
import NIOPosix
import OTLPWire

/// OTLP/HTTP (protobuf or JSON) over one keep-alive HTTP/1.1 connection, reopened when it drops.
///
/// Requests go one at a time, so the endpoint sees them in replay order. Connections go only to
/// the destination's pinned addresses (tried in turn after failures), never to a new DNS lookup.
actor HTTPExporter: OTLPExporter {
  private let destination: SealedDestination
  private let json: Bool
  /// The actor runs on its connection's event loop: writes and responses need no thread hop.
  private let eventLoop: any EventLoop
  private let timeout: TimeAmount
  private var channel: (any Channel)?
  private var addressIndex = 0

  init(destination: SealedDestination, json: Bool, timeoutSeconds: Int64, group: any EventLoopGroup) {
    self.destination = destination
    self.json = json
    self.timeout = .seconds(timeoutSeconds)
    self.eventLoop = group.next()
  }

  nonisolated var unownedExecutor: UnownedSerialExecutor { eventLoop.executor.asUnownedSerialExecutor() }

  func exportAll(_ records: [PreparedRecord], retry: RetryPolicy) async -> BatchOutcome {
    await deliverInOrder(records, retry: retry) { signal, tenant, request in
      await export(signal: signal, tenant: tenant, request: request)
    }
  }

  func export(signal: Signal, tenant: String, request: ArraySlice<UInt8>) async -> ExportOutcome {
    let channel: any Channel
    do {
      channel = try await connectedChannel()
    } catch {
      addressIndex += 1
      return .retryable(reason: "cannot connect to \(destination.endpoint): \(error)", retryAfterSeconds: nil)
    }
    var head = HTTPRequestHead(
      version: .http1_1, method: .POST, uri: destination.endpoint.path(for: signal.rawValue))
    head.headers.add(name: "Host", value: destination.endpoint.hostHeader)
    head.headers.add(name: "Content-Type", value: json ? "application/json" : "application/x-protobuf")
    head.headers.add(name: "Content-Length", value: String(request.count))
    head.headers.add(name: "User-Agent", value: "stella-forensics-replay/0.1.0")
    head.headers.add(name: tenantHeader, value: tenant)
    var body = channel.allocator.buffer(capacity: request.count)
    body.writeBytes(request)
    let promise = channel.eventLoop.makePromise(of: HTTPExchange.Response.self)
    channel.writeAndFlush(HTTPExchange.Request(head: head, body: body, promise: promise), promise: nil)
    let deadline = channel.eventLoop.scheduleTask(in: timeout) {
      promise.fail(HTTPExchange.Failure.timedOut)
    }
    let response: HTTPExchange.Response
    do {
      response = try await promise.futureResult.get()
      deadline.cancel()
    } catch {
      deadline.cancel()
      drop(channel)
      return .retryable(reason: "\(destination.endpoint): \(error)", retryAfterSeconds: nil)
    }
    if !response.keepAlive { drop(channel) }
    let status = response.status.code
    switch status {
    case 200..<300:
      return .accepted(rejectedItems: json ? 0 : OTLPWireReader.partialSuccessRejected(inResponse: response.body))
    case 429, 502, 503, 504:
      return .retryable(
        reason: "HTTP \(status)\(Self.detail(response.body))",
        retryAfterSeconds: response.retryAfter.flatMap(Self.retryAfterSeconds))
    default:
      return .rejected(reason: "HTTP \(status)\(Self.detail(response.body))")
    }
  }

  func close() async {
    if let channel {
      self.channel = nil
      try? await channel.close()
    }
  }

  private func drop(_ channel: any Channel) {
    if self.channel === channel { self.channel = nil }
    channel.close(promise: nil)
  }

  private func connectedChannel() async throws -> any Channel {
    if let channel, channel.isActive { return channel }
    let address = destination.addresses[addressIndex % destination.addresses.count]
    let socketAddress = try SocketAddress(ipAddress: address.description, port: destination.endpoint.port)
    let channel = try await ClientBootstrap(group: eventLoop)
      .connectTimeout(timeout)
      .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHTTPClientHandlers()
          try channel.pipeline.syncOperations.addHandler(HTTPExchange())
        }
      }
      .connect(to: socketAddress).get()
    self.channel = channel
    return channel
  }

  /// A short excerpt of an error body for messages.
  static func detail(_ body: [UInt8]) -> String {
    guard !body.isEmpty else { return "" }
    let text = String(decoding: body.prefix(200), as: UTF8.self).filter { !$0.isNewline }
    return ": " + text
  }

  /// `Retry-After` as delay-seconds (RFC 9110 §10.2.3); an HTTP-date is read as "some time", 1 s.
  static func retryAfterSeconds(_ value: String) -> Double? {
    let trimmed = String(value.filter { $0 != " " && $0 != "\t" })
    if let seconds = UInt64(trimmed) { return Double(seconds) }
    return trimmed.isEmpty ? nil : 1
  }
}

/// Matches responses to requests on one HTTP/1.1 connection, in order.
final class HTTPExchange: ChannelDuplexHandler {
  typealias InboundIn = HTTPClientResponsePart
  typealias OutboundIn = Request
  typealias OutboundOut = HTTPClientRequestPart

  struct Request: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer
    var promise: EventLoopPromise<Response>
  }

  struct Response: Sendable {
    var status: HTTPResponseStatus
    var keepAlive: Bool
    var retryAfter: String?
    var body: [UInt8]
  }

  enum Failure: Error, CustomStringConvertible {
    case connectionClosed
    case timedOut
    var description: String {
      switch self {
      case .connectionClosed: "connection closed before the response"
      case .timedOut: "no response in time"
      }
    }
  }

  /// Error bodies are kept only this long; success bodies are small OTLP responses.
  private static let maxBody = 1 << 20
  private var waiting = CircularBuffer<EventLoopPromise<Response>>()
  private var current: Response?

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    let request = unwrapOutboundIn(data)
    waiting.append(request.promise)
    context.write(wrapOutboundOut(.head(request.head)), promise: nil)
    context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
    context.write(wrapOutboundOut(.end(nil)), promise: promise)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head):
      current = Response(
        status: head.status, keepAlive: head.isKeepAlive, retryAfter: head.headers.first(name: "Retry-After"),
        body: [])
    case .body(var buffer):
      if var response = current, response.body.count < Self.maxBody {
        response.body.append(contentsOf: buffer.readBytes(length: min(buffer.readableBytes, Self.maxBody)) ?? [])
        current = response
      }
    case .end:
      if let response = current {
        current = nil
        if !waiting.isEmpty {
          // 1xx heads are informational; the final response carries the status that counts.
          if response.status.code >= 200 {
            waiting.removeFirst().succeed(response)
          }
        }
      }
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    failAll(Failure.connectionClosed)
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    failAll(error)
    context.close(promise: nil)
  }

  private func failAll(_ error: any Error) {
    while !waiting.isEmpty { waiting.removeFirst().fail(error) }
  }
}
