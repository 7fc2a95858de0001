import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOPosix
import NIOSSL

/// Binds the OTLP/gRPC listening socket for gRPC Swift's custom HTTP/2 transport, with our own
/// TLS handler in front of each connection.
///
/// gRPC Swift's Posix transport takes its TLS configuration once, builds one TLS context when it
/// starts listening and keeps it for good, so a certificate could not change without a restart.
/// This factory asks a ``ReloadableServerTLSContext`` for the context of each connection it
/// accepts, so a reload (SIGHUP) reaches new gRPC connections exactly as it reaches OTLP/HTTP and
/// admin ones, while open connections keep theirs. Without TLS it does what the Posix transport
/// does for plaintext.
struct GRPCListenerFactory: HTTP2ServerTransport.ListenerFactory {
  let host: String
  let port: Int
  let tls: ReloadableServerTLSContext?
  let eventLoopGroup: any EventLoopGroup

  func makeListeningChannel(
    listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
    connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
  ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
    let tls = self.tls
    return try await ServerBootstrap(group: eventLoopGroup)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .serverChannelInitializer { channel in listenerConfigurator.configure(channel: channel) }
      .bind(host: host, port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls { try channel.pipeline.syncOperations.addHandler(tls.makeHandler()) }
        }.flatMap {
          // ALPN is offered (`h2`) but not required: a client that sends none still speaks gRPC.
          connectionConfigurator.configure(
            channel: channel, tls: tls == nil ? .none : .configured(requireALPN: false))
        }
      }
  }
}
