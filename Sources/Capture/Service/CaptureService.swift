import Dispatch
import Foundation
public import Logging
import Manifest
import NIOCore
import NIOPosix
import Synchronization

/// The addresses the service's listeners are bound to (ports resolved when 0 was asked for).
public struct CaptureListeners: Sendable, Equatable {
  public var otlpHTTP: String
  public var otlpGRPC: String
  public var admin: String
}

/// The long-running capture service: journal, admission pipeline, OTLP/HTTP and OTLP/gRPC
/// receivers, and the admin endpoint.
public final class CaptureService: Sendable {
  public let configuration: CaptureConfiguration
  private let logger: Logger
  private let journal: Journal
  private let pipeline: CapturePipeline
  private let group: MultiThreadedEventLoopGroup
  private let http: OTLPHTTPReceiver
  private let grpc: OTLPGRPCReceiver
  private let admin: AdminHTTPServer
  private let ready = ReadyFlag()
  private let startedAt = Date()

  /// Opens the journal (recovering it) and prepares the listeners; nothing listens yet.
  public init(configuration: CaptureConfiguration, logger: Logger) throws(CaptureServiceError) {
    do {
      try configuration.validate()
    } catch {
      throw CaptureServiceError(.configuration, error.message)
    }
    self.configuration = configuration
    self.logger = logger
    let journal: Journal
    do {
      journal = try Journal(
        dataDirectory: configuration.dataDirectory, nodeID: configuration.nodeID, options: configuration.journal,
        logger: logger)
    } catch {
      throw CaptureServiceError(error.kind == .configuration || error.kind == .locked ? .configuration : .journal, error.message)
    }
    self.journal = journal
    let pipeline = CapturePipeline(
      journal: journal, maxInFlightBytes: configuration.maxInFlightBytes,
      maxRequestBytes: configuration.maxRequestBytes, defaultTenant: configuration.defaultTenant)
    self.pipeline = pipeline
    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    self.group = group
    self.http = OTLPHTTPReceiver(
      ingest: pipeline,
      options: OTLPHTTPReceiver.Options(
        host: configuration.otlpHTTP.host, port: configuration.otlpHTTP.port,
        maxConnections: configuration.maxConnections, idleTimeout: .seconds(Int64(configuration.idleTimeoutSeconds)),
        requestReadTimeout: .seconds(Int64(configuration.requestTimeoutSeconds)),
        tenantHeader: configuration.tenantHeader, retryAfterSeconds: pipeline.retryAfterSeconds),
      group: group, logger: logger)
    self.grpc = OTLPGRPCReceiver(
      ingest: pipeline,
      options: OTLPGRPCReceiver.Options(
        host: configuration.otlpGRPC.host, port: configuration.otlpGRPC.port,
        tenantMetadataKey: configuration.tenantHeader),
      group: group, logger: logger)
    let routes = AdminRoutes(journal: journal, pipeline: pipeline, ready: ready, configuration: configuration)
    self.admin = AdminHTTPServer(
      options: AdminHTTPServer.Options(host: configuration.admin.host, port: configuration.admin.port),
      group: group, logger: logger, handler: { request in await routes.handle(request) })
  }

  /// The node id the journal captures under.
  public var nodeID: String { journal.nodeID }

  /// Binds every listener and returns their addresses; the service is ready when this returns.
  public func start() async throws(CaptureServiceError) -> CaptureListeners {
    do {
      let adminAddress = try await admin.start()
      let httpAddress = try await http.start()
      let grpcAddress = try await grpc.start()
      ready.set(true)
      return CaptureListeners(
        otlpHTTP: Self.describe(httpAddress), otlpGRPC: grpcAddress, admin: Self.describe(adminAddress))
    } catch {
      await stop()
      throw CaptureServiceError(.listen, "cannot listen: \(error)")
    }
  }

  /// Stops the listeners (letting running exchanges finish), then the journal: queued records
  /// are written and synced and every open segment is sealed.
  public func stop() async {
    ready.set(false)
    await grpc.stop()
    await http.stop()
    await admin.stop()
    await journal.stop()
    // The event loop group is left to the process exit: NIO and gRPC still schedule channel
    // clean-up work on it after their stop calls return, and a shut-down group refuses that.
  }

  /// Runs until SIGTERM or SIGINT, then stops cleanly.
  public func runUntilSignalled() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let fired = Mutex(false)
      var sources: [any DispatchSourceSignal] = []
      for signalNumber in [SIGTERM, SIGINT] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler {
          let first = fired.withLock { value in
            defer { value = true }
            return !value
          }
          if first { continuation.resume() }
        }
        source.resume()
        sources.append(source)
      }
      SignalSources.keep(sources)
    }
    logger.info("stopping: finishing open exchanges, syncing and sealing the journal")
    await stop()
  }

  private static func describe(_ address: SocketAddress) -> String {
    guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
    return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
  }
}

/// Keeps signal sources alive for the life of the process.
private enum SignalSources {
  private static let held = Mutex<[UncheckedSendable<any DispatchSourceSignal>]>([])
  static func keep(_ sources: [any DispatchSourceSignal]) {
    held.withLock { $0 += sources.map { UncheckedSendable($0) } }
  }
}

/// Why the capture service could not start.
public struct CaptureServiceError: Error, Sendable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// A bad option or configuration file, or a data directory in use or of another node.
    case configuration
    /// The journal could not be opened or recovered.
    case journal
    /// A listener could not bind.
    case listen
  }

  public var kind: Kind
  public var message: String

  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }

  public var description: String { message }
}

/// Whether the service is ready to take requests (set once every listener is bound).
final class ReadyFlag: Sendable {
  private let value = Mutex(false)
  var isReady: Bool { value.withLock { $0 } }
  func set(_ ready: Bool) { value.withLock { $0 = ready } }
}

/// The admin endpoint's routes: health, readiness, status, sealing.
struct AdminRoutes: Sendable {
  let journal: Journal
  let pipeline: CapturePipeline
  let ready: ReadyFlag
  let configuration: CaptureConfiguration

  func handle(_ request: AdminRequest) async -> AdminResponse {
    switch (request.method, request.path) {
    case ("GET", "/healthz"):
      return AdminResponse(status: 200, body: Array("ok\n".utf8))
    case ("GET", "/readyz"):
      if !ready.isReady { return AdminResponse(status: 503, body: Array("starting or stopping\n".utf8)) }
      if let problem = journal.admissionProblem() {
        return AdminResponse(status: 503, body: Array("not accepting: \(problem.message)\n".utf8))
      }
      return AdminResponse(status: 200, body: Array("ready\n".utf8))
    case ("GET", "/status"):
      return json(200, statusValue())
    case ("POST", "/seal"):
      await journal.sealOpenSegments()
      return json(200, statusValue())
    case (_, "/healthz"), (_, "/readyz"), (_, "/status"), (_, "/seal"):
      return AdminResponse(status: 405, body: Array("method not allowed\n".utf8))
    default:
      return AdminResponse(status: 404, body: Array("not found: \(request.path)\n".utf8))
    }
  }

  private func json(_ status: Int, _ value: JSONValue) -> AdminResponse {
    let body = (try? CanonicalJSON.serialize(value)) ?? Array("{}".utf8)
    return AdminResponse(status: status, contentType: "application/json", body: body + [0x0A])
  }

  /// The `/status` document (its schema is in the README).
  func statusValue() -> JSONValue {
    let status = journal.status()
    let counters = pipeline.counterSnapshot
    func number(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }
    let streams = status.streams.map { stream in
      JSONValue.object([
        ("nextSeq", .string(String(stream.nextSeq))), ("openRecords", number(stream.openRecords)),
        ("signal", .string(stream.signal.rawValue)), ("tenant", .string(stream.tenant)),
      ])
    }
    let recovery = status.recovery.map { report in
      JSONValue.object([
        ("cutBytes", number(report.cutBytes)), ("path", .string(report.path)), ("records", number(report.records)),
      ])
    }
    let accepted = Signal.allCases.map { ($0.rawValue, number(counters.accepted[$0] ?? 0)) }
    let rejected = counters.rejected.sorted { $0.key < $1.key }.map { ($0.key, number($0.value)) }
    return .object([
      ("nodeId", .string(status.nodeID)),
      ("profile", .string(configuration.profile.rawValue)),
      ("ready", .bool(ready.isReady)),
      (
        "journal",
        .object([
          ("accepting", .bool(status.accepting)), ("appendedBytes", .string(String(status.appendedBytes))),
          ("appendedRecords", .string(String(status.appendedRecords))), ("bytes", .string(String(status.bytes))),
          ("durability", .string(status.durability.rawValue)),
          ("freeBytes", status.freeBytes.map { .string(String($0)) } ?? .null),
          ("maxBytes", .string(String(status.maxBytes))), ("minFreeBytes", .string(String(status.minFreeBytes))),
          ("sealedSegments", .string(String(status.sealedSegments))), ("streams", .array(streams)),
          ("syncs", .string(String(status.syncs))),
        ])
      ),
      ("recovery", .array(recovery)),
      (
        "ingest",
        .object([
          ("accepted", .object(accepted)), ("acceptedBytes", .string(String(counters.acceptedBytes))),
          ("inFlightBytes", number(pipeline.inFlightBytes)), ("maxInFlightBytes", number(pipeline.maxInFlightBytes)),
          ("rejected", .object(rejected)),
        ])
      ),
    ])
  }
}
