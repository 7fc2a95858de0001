internal import NIOCore

/// Sent down the pipeline, before the bytes themselves, each time bytes arrive on the socket.
///
/// The HTTP decoder only reports a request once its whole head is parsed, so a client that
/// trickles its headers (slowloris) would be invisible to the request handler's deadline without
/// this.
struct ConnectionBytesReceived: Sendable {}

/// Raw HTTP/1.1 answers written below the HTTP encoder, for moments when no request head was
/// parsed (so NIO's pipelining handler has no request to pair a response with) and the
/// connection is closed right after.
enum RawHTTPAnswer: Sendable {
  /// 408: the request did not arrive within the read deadline.
  case requestTimeout
  /// 503 with `Retry-After`: the server is at its connection limit.
  case tooManyConnections(retryAfterSeconds: Int)

  var bytes: [UInt8] {
    switch self {
    case .requestTimeout:
      return Array("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8)
    case .tooManyConnections(let seconds):
      return Array(
        ("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: \(seconds)\r\n"
          + "Content-Length: 0\r\n\r\n").utf8)
    }
  }
}

/// An outbound user event: write `answer` as raw bytes, then close the connection.
struct SendRawAnswerAndClose: Sendable {
  var answer: RawHTTPAnswer
}

/// The first handler of an HTTP connection's pipeline, on raw bytes: reports byte arrival to the
/// request handler and writes the raw answers of ``RawHTTPAnswer`` when asked to.
final class ConnectionActivityHandler: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer
  typealias OutboundIn = IOData
  typealias OutboundOut = IOData

  private var closing = false

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    // Nothing read after a raw answer can be answered any more.
    if closing { return }
    context.fireUserInboundEventTriggered(ConnectionBytesReceived())
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    guard !closing else {
      // After a raw answer the connection is closing; the HTTP handlers above may still try to
      // answer the half-parsed request (the decoder reports it truncated at EOF), which must not
      // follow the raw answer on the wire.
      promise?.fail(ChannelError.ioOnClosedChannel)
      return
    }
    context.write(data, promise: promise)
  }

  func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
    guard let send = event as? SendRawAnswerAndClose else {
      context.triggerUserOutboundEvent(event, promise: promise)
      return
    }
    guard !closing else {
      promise?.succeed()
      return
    }
    closing = true
    let buffer = context.channel.allocator.buffer(bytes: send.answer.bytes)
    let loopBound = context.loopBound
    context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer))).whenComplete { _ in
      loopBound.value.close(promise: nil)
    }
    promise?.succeed()
  }
}

@available(*, unavailable)
extension ConnectionActivityHandler: Sendable {}

/// Answers a connection over the server's connection limit with a raw 503 and closes it, without
/// reading anything.
final class RejectConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  private let retryAfterSeconds: Int

  init(retryAfterSeconds: Int) {
    self.retryAfterSeconds = retryAfterSeconds
  }

  func handlerAdded(context: ChannelHandlerContext) {
    if context.channel.isActive { answer(context: context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    answer(context: context)
    context.fireChannelActive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

  private var answered = false

  private func answer(context: ChannelHandlerContext) {
    guard !answered else { return }
    answered = true
    let bytes = RawHTTPAnswer.tooManyConnections(retryAfterSeconds: retryAfterSeconds).bytes
    let loopBound = context.loopBound
    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes))).whenComplete { _ in
      loopBound.value.close(promise: nil)
    }
  }
}

@available(*, unavailable)
extension RejectConnectionHandler: Sendable {}
