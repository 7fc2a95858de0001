import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Manifest
import OTLPWire

/// OTLP/gRPC: the `Export` method of each signal's service, with the archived bytes as the
/// message (a pass-through serializer, so nothing is decoded or re-encoded on the way).
final class GRPCExporter: OTLPExporter {
  private let client: GRPCClient<HTTP2ClientTransport.Posix>
  private let runner: Task<Void, Never>
  private let endpoint: EndpointURL
  private let timeoutSeconds: Int64

  init(destination: SealedDestination, timeoutSeconds: Int64) throws(ReplayError) {
    endpoint = destination.endpoint
    self.timeoutSeconds = timeoutSeconds
    let port = destination.endpoint.port
    // The pinned addresses only; the transport never resolves the host name itself.
    var v4: [(host: String, port: Int)] = []
    var v6: [(host: String, port: Int)] = []
    for address in destination.addresses {
      switch address {
      case .v4: v4.append((address.description, port))
      case .v6: v6.append((address.description, port))
      }
    }
    let target: any ResolvableTarget = v4.isEmpty ? .ipv6(pairs: v6) : .ipv4(pairs: v4)
    do {
      let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: .plaintext)
      let client = GRPCClient(transport: transport)
      self.client = client
      runner = Task { try? await client.runConnections() }
    } catch {
      throw ReplayError(.invalidEndpoint, "cannot set up gRPC to \(destination.endpoint): \(error)")
    }
  }

  func export(signal: Signal, tenant: String, request: ArraySlice<UInt8>) async -> ExportOutcome {
    var options = CallOptions.defaults
    options.timeout = .seconds(timeoutSeconds)
    options.waitForReady = false
    options.maxResponseMessageBytes = 4 << 20
    do {
      let response = try await client.unary(
        request: ClientRequest(message: request, metadata: [tenantHeader.lowercased(): "\(tenant)"]),
        descriptor: MethodDescriptor(fullyQualifiedService: signal.grpcService, method: "Export"),
        serializer: PassThroughSerializer(), deserializer: PassThroughDeserializer(), options: options
      ) { response in try response.message }
      return .accepted(rejectedItems: OTLPWireReader.partialSuccessRejected(inResponse: response))
    } catch let error as RPCError {
      let reason = "gRPC \(error.code) from \(endpoint): \(error.message)"
      switch error.code {
      case .unavailable, .resourceExhausted, .deadlineExceeded, .aborted, .cancelled:
        return .retryable(reason: reason, retryAfterSeconds: nil)
      default:
        return .rejected(reason: reason)
      }
    } catch {
      return .retryable(reason: "gRPC call to \(endpoint) failed: \(error)", retryAfterSeconds: nil)
    }
  }

  func exportAll(_ records: [PreparedRecord], retry: RetryPolicy, stop: ReplayStop) async -> BatchOutcome {
    await deliverInOrder(records, retry: retry, stop: stop) { signal, tenant, request in
      await export(signal: signal, tenant: tenant, request: request)
    }
  }

  func close() async {
    client.beginGracefulShutdown()
    await runner.value
  }
}

/// The archived bytes go out as they are.
struct PassThroughSerializer: MessageSerializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: ArraySlice<UInt8>) throws -> Bytes { Bytes(message) }
}

/// The response's bytes, undecoded (only the partial-success count is read from them).
struct PassThroughDeserializer: MessageDeserializer {
  func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
    serializedMessageBytes.withUnsafeBytes { Array($0) }
  }
}
