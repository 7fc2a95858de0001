import BlockingHTTP
import Dispatch
import Manifest
import OTLPWire

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// OTLP/HTTP (protobuf or JSON) over one keep-alive HTTP/1.1 connection, reopened when it drops.
///
/// Requests go one at a time, so the endpoint sees them in replay order. Connections go only to
/// the destination's pinned addresses (tried in turn after failures), never to a new DNS lookup.
/// A batch is delivered on the exporter's own thread with blocking I/O (``HTTPConnection``), so
/// the request bodies go from the segment to the socket uncopied and each request costs two
/// system calls, not a round of task and event-loop hand-overs.
final class HTTPExporter: OTLPExporter {
  private let destination: SealedDestination
  private let json: Bool
  private let timeoutSeconds: Int64
  /// The thread batches are delivered on; ``link`` is only touched there.
  private let worker = DispatchQueue(label: "stella.replay.http")
  private let link = Link()

  /// The connection and the address to try next; confined to ``worker``.
  private final class Link: @unchecked Sendable {
    var connection: HTTPConnection?
    var addressIndex = 0
  }

  init(destination: SealedDestination, json: Bool, timeoutSeconds: Int64) {
    self.destination = destination
    self.json = json
    self.timeoutSeconds = timeoutSeconds
  }

  func exportAll(_ records: [PreparedRecord], retry: RetryPolicy, stop: ReplayStop) async -> BatchOutcome {
    await withCheckedContinuation { continuation in
      worker.async { continuation.resume(returning: self.deliver(records, retry: retry, stop: stop)) }
    }
  }

  func close() async {
    await withCheckedContinuation { continuation in
      worker.async {
        self.link.connection = nil
        continuation.resume()
      }
    }
  }

  /// The delivery loop, on ``worker``.
  private func deliver(_ records: [PreparedRecord], retry: RetryPolicy, stop: ReplayStop) -> BatchOutcome {
    var ledger = DeliveryLedger(retry: retry)
    for record in records {
      var attempt = 1
      delivery: while !stop.isRaised {
        switch ledger.record(export(record), of: record, attempt: attempt) {
        case .next: break delivery
        case .stop: return ledger.outcome
        case .retry(let seconds):
          attempt += 1
          Self.sleep(seconds: seconds, unless: stop)
        }
      }
      if stop.isRaised { break }
    }
    return ledger.outcome
  }

  /// Error bodies are kept only this long; success bodies are small OTLP responses.
  static let maxKeptBody = 1 << 20

  /// One attempt at one record, on ``worker``.
  private func export(_ record: PreparedRecord) -> ExportOutcome {
    let deadline = HTTPConnection.monotonicMillis() + max(timeoutSeconds, 1) * 1000
    let connection: HTTPConnection
    if let open = link.connection {
      connection = open
    } else {
      let address = destination.addresses[link.addressIndex % destination.addresses.count]
      do {
        connection = try address.withSocketAddress(port: destination.endpoint.port) {
          (socketAddress, length) throws(HTTPConnectionFailure) in
          try HTTPConnection(address: socketAddress, length: length, deadline: deadline, maxKeptBody: Self.maxKeptBody)
        }
      } catch {
        link.addressIndex += 1
        return .retryable(reason: "cannot connect to \(destination.endpoint): \(error)", retryAfterSeconds: nil)
      }
      link.connection = connection
    }
    let head: [UInt8]
    do {
      head = try requestHead(signal: record.stream.signal, tenant: record.stream.tenant, length: record.payload.count)
    } catch {
      return .rejected(reason: error.description)
    }
    let response: HTTPResponse
    do {
      response = try record.payload.withUnsafeBytes { body throws(HTTPConnectionFailure) in
        try connection.exchange(head: head, body: body, deadline: deadline)
      }
    } catch {
      link.connection = nil
      return .retryable(reason: "\(destination.endpoint): \(error)", retryAfterSeconds: nil)
    }
    if !response.keepAlive { link.connection = nil }
    switch response.status {
    case 200..<300:
      return .accepted(rejectedItems: json ? 0 : OTLPWireReader.partialSuccessRejected(inResponse: response.body))
    case 429, 502, 503, 504:
      return .retryable(
        reason: "HTTP \(response.status)\(Self.detail(response.body))",
        retryAfterSeconds: response.headers["retry-after"].flatMap(Self.retryAfterSeconds))
    default:
      return .rejected(reason: "HTTP \(response.status)\(Self.detail(response.body))")
    }
  }

  /// The request line and fields of one export request.
  func requestHead(signal: Signal, tenant: String, length: Int) throws(RequestHeadError) -> [UInt8] {
    // A field value with a line break would end the head early and let bundle content write
    // fields of its own.
    guard tenant.utf8.allSatisfy({ $0 == UInt8(ascii: "\t") || ($0 >= 0x20 && $0 != 0x7F) }) else {
      throw RequestHeadError(description: "tenant \(tenant.debugDescription) cannot travel in an HTTP header field")
    }
    let text =
      "POST \(destination.endpoint.path(for: signal.rawValue)) HTTP/1.1\r\n"
      + "Host: \(destination.endpoint.hostHeader)\r\n"
      + "Content-Type: \(json ? "application/json" : "application/x-protobuf")\r\n"
      + "Content-Length: \(length)\r\n"
      + "User-Agent: stella-forensics-replay/0.1.0\r\n"
      + "\(tenantHeader): \(tenant)\r\n\r\n"
    return Array(text.utf8)
  }

  /// A request head that cannot be written (the record is refused for good).
  struct RequestHeadError: Error, CustomStringConvertible {
    let description: String
  }

  /// Waits `seconds`, in short steps so a raised `stop` ends the wait early.
  private static func sleep(seconds: Double, unless stop: ReplayStop) {
    let end = HTTPConnection.monotonicMillis() + Int64(seconds * 1000)
    while !stop.isRaised {
      let left = end - HTTPConnection.monotonicMillis()
      guard left > 0 else { return }
      usleep(UInt32(min(left, 50) * 1000))
    }
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
