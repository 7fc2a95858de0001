public import CodedErrors
internal import Logging
internal import NIOCore
internal import NIOPosix
internal import NIOSSL
internal import Synchronization

/// Why an HTTP server could not start or be used.
public typealias HTTPServerError = CodedError<HTTPServerErrorCode>

/// The codes of ``HTTPServerError``: what kind of failure it is.
public enum HTTPServerErrorCode: Sendable, Hashable {
  /// `start()` was called on a server that is running or was stopped.
  case alreadyStarted
  /// Binding the listening socket failed (address in use, permission, bad host).
  case bindFailed
}

/// The listening socket and the set of open connections of one HTTP server: binding, the
/// connection limit, and a graceful stop. Shared by the OTLP/HTTP receiver and the admin server.
///
/// States: `notStarted` → `running(listener)` → `stopped`; a stopped server does not start again.
final class HTTPServerCore: Sendable {
  private enum Lifecycle {
    case notStarted
    case starting
    case running(any Channel)
    case stopped
  }

  private struct State {
    var lifecycle: Lifecycle = .notStarted
    var connections: [ObjectIdentifier: any Channel] = [:]
  }

  private let name: String
  private let group: any EventLoopGroup
  /// Open connections this server may hold, possibly shared with another listener.
  private let budget: ConnectionBudget
  private let retryAfterSeconds: Int
  private let logger: Logger
  private let state = Mutex(State())
  /// Told of every connection turned away for the connection limit.
  private let onRefusedConnection: (@Sendable () -> Void)?

  init(
    name: String, group: any EventLoopGroup, budget: ConnectionBudget, retryAfterSeconds: Int, logger: Logger,
    onRefusedConnection: (@Sendable () -> Void)? = nil
  ) {
    self.onRefusedConnection = onRefusedConnection
    self.name = name
    self.group = group
    self.budget = budget
    self.retryAfterSeconds = retryAfterSeconds
    self.logger = logger
  }

  /// The number of connections open now.
  var connectionCount: Int { state.withLock { $0.connections.count } }

  /// Binds `host:port` (port 0: an ephemeral port) and serves each accepted connection with the
  /// pipeline `configure` builds (called on the connection's event loop). With `tls`, every
  /// connection starts with a TLS handler made from the context current when it is accepted, and
  /// a connection over the limit is closed without an answer.
  func start(
    host: String, port: Int, tls: ReloadableServerTLSContext? = nil,
    configure: @escaping @Sendable (any Channel) throws -> Void
  ) async throws -> SocketAddress {
    try state.withLock { state throws(HTTPServerError) in
      guard case .notStarted = state.lifecycle else {
        throw HTTPServerError(.alreadyStarted, "\(name) server was already started")
      }
      state.lifecycle = .starting
    }
    let bootstrap = ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      // Each connection's receive buffers are freed after every read rather than kept for the
      // life of the connection (see TransientRecvByteBufferAllocator).
      .childChannelOption(.maxMessagesPerRead, value: TransientRecvByteBufferAllocator.maxMessagesPerRead)
      .childChannelOption(.recvAllocator, value: TransientRecvByteBufferAllocator())
      .childChannelInitializer { [self] channel in
        channel.eventLoop.makeCompletedFuture {
          if self.admit(channel) {
            // First in the pipeline: everything after it sees plaintext.
            if let tls { try channel.pipeline.syncOperations.addHandler(tls.makeHandler()) }
            try configure(channel)
          } else if tls != nil {
            // No 503 over TLS: it could only be written after a handshake, and a client that
            // never completes one would keep a connection open outside the limit. Closed at
            // once, as OTLP/gRPC does; clients retry with backoff.
            channel.close(promise: nil)
          } else {
            try channel.pipeline.syncOperations.addHandler(
              RejectConnectionHandler(retryAfterSeconds: self.retryAfterSeconds))
          }
        }
      }
    let listener: any Channel
    do {
      listener = try await bootstrap.bind(host: host, port: port).get()
    } catch {
      state.withLock { $0.lifecycle = .notStarted }
      throw HTTPServerError(.bindFailed, "\(name) server cannot listen on \(host):\(port): \(error)")
    }
    let stoppedMeanwhile = state.withLock { state -> Bool in
      if case .stopped = state.lifecycle { return true }
      state.lifecycle = .running(listener)
      return false
    }
    if stoppedMeanwhile {
      try? await listener.close()
      throw HTTPServerError(.alreadyStarted, "\(name) server was stopped while starting")
    }
    guard let address = listener.localAddress else {
      throw HTTPServerError(.bindFailed, "\(name) server has no local address after binding \(host):\(port)")
    }
    logger.info("\(name) server listening", metadata: ["address": "\(address)"])
    return address
  }

  /// Counts `channel` against the connection limit; `false` when it must be turned away.
  private func admit(_ channel: any Channel) -> Bool {
    let admitted = state.withLock { state -> Bool in
      guard case .running = state.lifecycle, budget.acquire() else { return false }
      state.connections[ObjectIdentifier(channel)] = channel
      return true
    }
    if admitted {
      channel.closeFuture.whenComplete { [self] _ in
        _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
        budget.release()
      }
    } else {
      onRefusedConnection?()
      logger.info(
        "\(name) server refused a connection: limit of \(budget.limit) open connections reached",
        metadata: ["peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
    }
    return admitted
  }

  /// Stops accepting, asks every connection to finish its current exchange
  /// (`ChannelShouldQuiesceEvent`: NIO's HTTP pipelining handler closes after the response in
  /// progress), and closes whatever is still open after `gracePeriod`.
  func stop(gracePeriod: TimeAmount) async {
    let (listener, connections) = state.withLock { state -> ((any Channel)?, [any Channel]) in
      var listener: (any Channel)?
      if case .running(let channel) = state.lifecycle { listener = channel }
      state.lifecycle = .stopped
      return (listener, Array(state.connections.values))
    }
    if let listener { try? await listener.close() }
    guard !connections.isEmpty else { return }
    for connection in connections {
      connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }
    let eventLoop = group.next()
    let forceClose = eventLoop.scheduleTask(in: gracePeriod) {
      for connection in connections { connection.close(promise: nil) }
    }
    let allClosed = EventLoopFuture.andAllComplete(connections.map(\.closeFuture), on: eventLoop)
    try? await allClosed.get()
    forceClose.cancel()
    logger.info("\(name) server stopped")
  }
}
