import Foundation
public import Ingest
public import Journal
public import Manifest
public import Receivers
import Synchronization

/// Counts of what admission did, for `/status`.
public struct IngestCounters: Sendable, Equatable {
  /// Requests journaled, per signal.
  public var accepted: [Signal: UInt64] = [:]
  /// Request bytes journaled.
  public var acceptedBytes: UInt64 = 0
  /// Requests refused, by reason (`malformed`, `overloaded`, ...).
  public var rejected: [String: UInt64] = [:]
  /// What the redaction policy did to the requests it saw (all zero without a policy).
  public var redaction = RedactionCounters()
}

/// Totals of what redaction did since start, for `/status` and the metrics.
public struct RedactionCounters: Sendable, Equatable {
  /// Requests the policy changed (journaled in their rewritten form).
  public var requestsChanged: UInt64 = 0
  /// Unknown fields dropped, at every depth, instead of being journaled verbatim.
  public var unknownFieldsDropped: UInt64 = 0
  /// Attributes and kvlist entries dropped by allow, block or a masked key's collision.
  public var attributesDropped: UInt64 = 0
  /// Strings, keys and values rewritten by a mask or a hash.
  public var valuesRewritten: UInt64 = 0

  mutating func add(_ outcome: RedactionOutcome) {
    if outcome.changed { requestsChanged += 1 }
    unknownFieldsDropped += UInt64(outcome.unknownFieldsDropped)
    attributesDropped += UInt64(outcome.attributesDropped)
    valuesRewritten += UInt64(outcome.valuesRewritten)
  }
}

/// The admission pipeline behind every receiver: in-flight memory bound, decoding, tenant,
/// journal. A request is acknowledged only when the journal says its record is durable.
public final class CapturePipeline: OTLPIngest {
  public let journal: Journal
  public let maxInFlightBytes: Int
  public let maxRequestBytes: Int
  public let tenants: TenantResolver
  /// Applied to every request before the journal sees it.
  public let redactor: Redactor?
  /// Seconds a client is asked to wait after a backpressure answer.
  public let retryAfterSeconds: Int
  /// Sees every request after the journal acknowledged it (tail sampling into the archive);
  /// it must not block, since acknowledgements wait for it.
  private let observer: (@Sendable (AdmittedRequest) -> Void)?
  /// Bytes of acknowledged requests still held after the journal answered (the tail sampler's
  /// queue and buffered traces, kept copies waiting for the archive's writer): memory of the
  /// same kind, so they count against ``maxInFlightBytes``.
  private let heldAfterAcknowledgement: (@Sendable () -> Int)?
  private let inFlight = Mutex(0)
  /// Refusals and redaction totals; accepted requests are counted in the atomics below, so an
  /// acknowledgement takes no lock to be counted.
  private let counters = Mutex(IngestCounters())
  private let acceptedTraces = Atomic<UInt64>(0)
  private let acceptedLogs = Atomic<UInt64>(0)
  private let acceptedMetrics = Atomic<UInt64>(0)
  private let acceptedBytes = Atomic<UInt64>(0)
  /// Tenants the service takes at most (``CaptureConfiguration/maxTenants``).
  public let maxTenants: Int
  /// Every tenant taken so far, including those the journal already held at start, with its
  /// accepted-request counters once a request of it was admitted with metrics on (`nil` before,
  /// or without metrics). Kept under the one lock admission takes per request anyway.
  private let knownTenants: Mutex<[String: TenantIngestCounters?]>
  /// Where accepted requests are counted; `nil`: not counted.
  private let metrics: CaptureMetrics?

  public init(
    journal: Journal, maxInFlightBytes: Int, maxRequestBytes: Int, tenants: TenantPolicy, redactor: Redactor? = nil,
    retryAfterSeconds: Int = 2, maxTenants: Int = .max, observer: (@Sendable (AdmittedRequest) -> Void)? = nil,
    heldAfterAcknowledgement: (@Sendable () -> Int)? = nil, metrics: CaptureMetrics? = nil
  ) {
    self.heldAfterAcknowledgement = heldAfterAcknowledgement
    self.maxTenants = maxTenants
    self.metrics = metrics
    var known: [String: TenantIngestCounters?] = [:]
    for stream in journal.status().streams { known.updateValue(nil, forKey: stream.tenant) }
    self.knownTenants = Mutex(known)
    self.redactor = redactor
    self.observer = observer
    self.journal = journal
    self.maxInFlightBytes = maxInFlightBytes
    self.maxRequestBytes = maxRequestBytes
    self.tenants = TenantResolver(policy: tenants)
    self.retryAfterSeconds = retryAfterSeconds
  }

  public func reserveInFlight(_ bytes: Int) -> Bool {
    let held = heldAfterAcknowledgement?() ?? 0
    let reserved = inFlight.withLock { current in
      // A single request larger than the whole bound could never be admitted; it is let through
      // alone (when nothing else is in flight) so the bound never starves a legal request.
      guard current + held + bytes <= maxInFlightBytes || current == 0 else { return false }
      current += bytes
      return true
    }
    if !reserved { count(.overloaded) }
    return reserved
  }

  public func releaseInFlight(_ bytes: Int) {
    inFlight.withLock { $0 = max(0, $0 - bytes) }
  }

  /// Bytes reserved by requests being received or journaled.
  public var inFlightBytes: Int { inFlight.withLock { $0 } }

  /// Bytes of acknowledged requests still held downstream (the tail sampler), which count
  /// against ``maxInFlightBytes`` beside ``inFlightBytes``.
  public var heldAfterAcknowledgementBytes: Int { heldAfterAcknowledgement?() ?? 0 }

  public var counterSnapshot: IngestCounters {
    var snapshot = counters.withLock { $0 }
    let accepted: [(Signal, UInt64)] = [
      (.traces, acceptedTraces.load(ordering: .relaxed)), (.logs, acceptedLogs.load(ordering: .relaxed)),
      (.metrics, acceptedMetrics.load(ordering: .relaxed)),
    ]
    for (signal, count) in accepted where count > 0 { snapshot.accepted[signal] = count }
    snapshot.acceptedBytes = acceptedBytes.load(ordering: .relaxed)
    return snapshot
  }

  public func admissionProblem() -> RejectedRequest? {
    guard let problem = journal.admissionProblem() else { return nil }
    let rejection = Self.rejection(for: problem, retryAfterSeconds: retryAfterSeconds)
    count(rejection.kind)
    return rejection
  }

  public func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    export(
      body: body, signal: signal, encoding: encoding, tenantHeader: tenantHeader, clientIdentity: nil,
      completion: completion)
  }

  public func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?, clientIdentity: ClientIdentity?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    admit(
      body: body, signal: signal, encoding: encoding, tenantHeader: tenantHeader, clientIdentity: clientIdentity,
      transport: nil, completion: completion)
  }

  public func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?, clientIdentity: ClientIdentity?,
    transport: IngestTransport, completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    admit(
      body: body, signal: signal, encoding: encoding, tenantHeader: tenantHeader, clientIdentity: clientIdentity,
      transport: transport, completion: completion)
  }

  /// - Parameter transport: what accepted requests are counted under; `nil`: not counted.
  private func admit(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?, clientIdentity: ClientIdentity?,
    transport: IngestTransport?, completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    let receivedUnixNano = JournalClock.wallNanos()
    let request: [UInt8]
    let tenant: String
    var times: Manifest.OTLPTimeSummary?
    let items: UInt64
    let tenantCounters: TenantIngestCounters?
    do throws(RejectedRequest) {
      let decoded = try OTLPRequestDecoder.check(
        body: body, signal: signal, encoding: encoding, tenantAttribute: tenants.policy.resourceAttribute)
      // The tenant is resolved before redaction, which may remove the attribute naming it.
      tenant = try tenants.resolve(
        transportTenant: tenantHeader, resourceTenants: decoded.resourceTenants,
        moreResourceTenants: decoded.moreResourceTenants, clientIdentity: clientIdentity)
      tenantCounters = try admitTenant(tenant)
      items = decoded.times.itemCount
      if let redactor {
        let outcome = try redactor.redaction(of: decoded.request, signal: signal)
        // Replacement texts can be longer than what they replace: the rewritten request must
        // still fit in one record, or the client is told now rather than the journal failing.
        let limit = VerificationLimits().maxRecordSize - SegmentRecord.bodyPrefixSize
        guard outcome.request.count <= limit else {
          throw RejectedRequest(
            .payloadTooLarge,
            "redaction: the redacted request of \(outcome.request.count) bytes exceeds the record limit of \(limit) bytes"
          )
        }
        request = outcome.request
        // Counted when redaction happened, not when the journal took the record: the numbers
        // say what the policy removed from what clients sent.
        counters.withLock { $0.redaction.add(outcome) }
      } else {
        request = decoded.request
      }
      // Redaction never touches times, but a rewritten request is walked again by the journal
      // rather than trusted on that.
      times = request == decoded.request ? decoded.times : nil
    } catch {
      return reject(error, completion)
    }
    let admitted = AdmittedRequest(
      signal: signal, tenant: tenant, request: request, receivedUnixNano: receivedUnixNano, times: times)
    let retryAfter = retryAfterSeconds
    journal.append(admitted) { [self] result in
      switch result {
      case .success(let receipt):
        switch signal {
        case .traces: acceptedTraces.wrappingAdd(1, ordering: .relaxed)
        case .logs: acceptedLogs.wrappingAdd(1, ordering: .relaxed)
        case .metrics: acceptedMetrics.wrappingAdd(1, ordering: .relaxed)
        }
        acceptedBytes.wrappingAdd(UInt64(request.count), ordering: .relaxed)
        if let transport { tenantCounters?.accepted(signal: signal, transport: transport, items: items) }
        completion(.success(IngestReceipt(seq: receipt.seq, signal: signal, tenant: tenant)))
        observer?(admitted)
      case .failure(let error):
        reject(Self.rejection(for: error, retryAfterSeconds: retryAfter), completion)
      }
    }
  }

  /// Takes `tenant` if it is known or there is room for one more; refuses a new tenant past
  /// ``maxTenants``, so a client cannot make unbounded streams (files, descriptors) by inventing
  /// tenant names, while every tenant already taken keeps being served.
  /// - Returns: the tenant's accepted-request counters (so their labels are bounded as tenants are).
  private func admitTenant(_ tenant: String) throws(RejectedRequest) -> TenantIngestCounters? {
    let metrics = self.metrics
    let maxTenants = self.maxTenants
    return try knownTenants.withLock { known throws(RejectedRequest) -> TenantIngestCounters? in
      if let entry = known[tenant] {
        if let counters = entry { return counters }
        // Known, but without counters yet (held by the journal at start) or without metrics.
        guard metrics != nil else { return nil }
      } else if known.count >= maxTenants {
        throw RejectedRequest(
          .tenantRejected,
          "tenant \"\(tenant)\" is new and this capture service already takes its limit of \(maxTenants) tenants (limits.max-tenants)",
          reason: .tenantLimit)
      }
      let counters = metrics?.tenantCounters(tenant)
      known.updateValue(counters, forKey: tenant)
      return counters
    }
  }

  /// Tenants taken so far.
  public var tenantCount: Int { knownTenants.withLock { $0.count } }

  private func reject(
    _ rejection: RejectedRequest, _ completion: @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    count(rejection.kind)
    completion(.failure(rejection))
  }

  private func count(_ kind: RejectedRequest.Kind) {
    counters.withLock { $0.rejected["\(kind)", default: 0] += 1 }
  }

  /// How a journal refusal is told to the client.
  static func rejection(for error: JournalError, retryAfterSeconds: Int) -> RejectedRequest {
    switch error.kind {
    case .full:
      return RejectedRequest(.unavailable, error.message, retryAfterSeconds: retryAfterSeconds, reason: .disk)
    case .stopped:
      return RejectedRequest(.unavailable, error.message, retryAfterSeconds: retryAfterSeconds, reason: .stopping)
    case .invalidRecord:
      return RejectedRequest(.malformed, error.message)
    case .io, .locked, .corrupt, .configuration:
      // The write failed and nothing was acknowledged: the client may retry.
      return RejectedRequest(
        .unavailable, "journal write failed: \(error.message)", retryAfterSeconds: retryAfterSeconds,
        reason: .journalError)
    }
  }
}
