// The floors under capture's small-batch figure, on the same event-loop layout as capture (one
// loop per core). Whatever they reach against nginx is the most a NIO-based receiver can reach on
// the same load:
//   nio-http-floor PORT            reads each request body and answers 200: no OTLP check, no
//                                  journal, no fsync.
//   nio-http-floor PORT FILE       also makes each body durable before answering, as capture's
//                                  group commit does at its simplest: one writer thread appends
//                                  every body queued since its last pass to FILE, fdatasyncs once,
//                                  then answers them all. No framing, checksum, check or sampling.
// Listens on 127.0.0.1 and prints "ready" once bound.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Appends bodies to one file and answers them after an `fdatasync` that covers them.
final class GroupCommitWriter: @unchecked Sendable {
  private struct Pending {
    var body: ByteBuffer
    var done: @Sendable () -> Void
  }

  private let condition = NSCondition()
  private var pending: [Pending] = []
  private let descriptor: Int32

  init(path: String) throws {
    descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "open \(path)") }
    Thread.detachNewThread { [self] in run() }
  }

  func append(_ body: ByteBuffer, done: @escaping @Sendable () -> Void) {
    condition.lock()
    pending.append(Pending(body: body, done: done))
    condition.signal()
    condition.unlock()
  }

  private func run() {
    while true {
      condition.lock()
      while pending.isEmpty { condition.wait() }
      let batch = pending
      pending.removeAll(keepingCapacity: true)
      condition.unlock()
      var vectors: [iovec] = []
      vectors.reserveCapacity(batch.count)
      for item in batch {
        item.body.withUnsafeReadableBytes { bytes in
          vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
        }
      }
      // The bodies outlive the call (`batch` holds them), so their base addresses stay valid.
      var offset = 0
      while offset < vectors.count {
        let count = min(vectors.count - offset, 1024)  // IOV_MAX on Linux
        let written = vectors.withUnsafeBufferPointer { all in
          all.baseAddress.map { writev(descriptor, $0 + offset, Int32(count)) } ?? 0
        }
        precondition(written >= 0, "writev failed: \(errno)")
        offset += count
      }
      precondition(fdatasync(descriptor) == 0, "fdatasync failed: \(errno)")
      withExtendedLifetime(batch) {}
      for item in batch { item.done() }
    }
  }
}

final class AnswerOKHandler: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let writer: GroupCommitWriter?
  private var keepAlive = true
  private var body = ByteBuffer()
  private let headers: HTTPHeaders = ["content-length": "0"]

  init(writer: GroupCommitWriter?) { self.writer = writer }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head):
      keepAlive = head.isKeepAlive
      body.clear()
    case .body(var part):
      if writer != nil { body.writeBuffer(&part) }
    case .end:
      guard let writer else { return respond(context: context) }
      let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
      let eventLoop = context.eventLoop
      writer.append(body) {
        eventLoop.execute { loopBound.value.0.respond(context: loopBound.value.1) }
      }
      body = ByteBuffer()
    }
  }

  private func respond(context: ChannelHandlerContext) {
    var head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
    head.headers.replaceOrAdd(name: "connection", value: keepAlive ? "keep-alive" : "close")
    context.write(wrapOutboundOut(.head(head)), promise: nil)
    let closing = !keepAlive
    context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
      if closing { context.close(promise: nil) }
    }
  }
}

let arguments = CommandLine.arguments
guard (2...3).contains(arguments.count), let port = Int(arguments[1]) else {
  print("usage: nio-http-floor PORT [FILE]")
  exit(2)
}
let writer = try arguments.count == 3 ? GroupCommitWriter(path: arguments[2]) : nil
let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
let bootstrap = ServerBootstrap(group: group)
  .serverChannelOption(.backlog, value: 1024)
  .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
  .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
  .childChannelInitializer { channel in
    channel.pipeline.configureHTTPServerPipeline().flatMap {
      channel.pipeline.addHandler(AnswerOKHandler(writer: writer))
    }
  }
let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
FileHandle.standardOutput.write(Data("ready\n".utf8))
try channel.closeFuture.wait()
