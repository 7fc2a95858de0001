public import Logging
public import NIOCore

/// The `/metrics` listener: Prometheus text exposition for scrapers, read-only and without the
/// admin token, as any exporter serves it. Built on the admin server's HTTP plumbing, with the
/// same bounds (connection cap, idle timeout, request deadline) and small request bodies.
///
/// Scrapes are answered on the server's own event loop rather than in a concurrency task, so
/// metrics keep flowing when the cooperative pool is saturated, which is when they matter most.
public final class MetricsHTTPServer: Sendable {
  /// The text exposition's content type (Prometheus text format 0.0.4).
  public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
  /// The only path served.
  public static let path = "/metrics"

  private let server: AdminHTTPServer

  /// - Parameter render: makes the exposition at each scrape.
  public init(
    host: String, port: Int, tls: ReloadableServerTLSContext?, group: any EventLoopGroup, logger: Logger,
    render: @escaping @Sendable () -> [UInt8]
  ) {
    let options = AdminHTTPServer.Options(
      host: host, port: port, maxBodyBytes: 4 << 10, maxConnections: 16, idleTimeout: .seconds(30),
      requestDeadline: .seconds(10), tls: tls)
    server = AdminHTTPServer(
      options: options, group: group, logger: logger, name: "metrics",
      immediate: { request in Self.respond(to: request, render: render) },
      handler: { request in Self.respond(to: request, render: render) })
  }

  /// Binds and starts serving; returns the bound address.
  /// - Throws: ``HTTPServerError``.
  public func start() async throws -> SocketAddress {
    try await server.start()
  }

  /// Stops accepting and lets scrapes in progress finish.
  public func stop() async {
    await server.stop()
  }

  /// `GET /metrics` (a query string is ignored); 405 for another method on it, 404 elsewhere.
  static func respond(to request: AdminRequest, render: @Sendable () -> [UInt8]) -> AdminResponse {
    guard request.path == path else {
      return AdminResponse.text(404, "not found: only GET \(path) is served here\n")
    }
    guard request.method == "GET" else {
      return AdminResponse(
        status: 405, body: Array("method not allowed: use GET\n".utf8), headers: ["Allow": "GET"])
    }
    return AdminResponse(status: 200, contentType: contentType, body: render())
  }
}
