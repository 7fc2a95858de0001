import Capture
import Foundation
import OTLPProto
import Synchronization
import Testing

@testable import Journal
@testable import Sampling

#if canImport(Glibc)
  import Glibc
#endif

/// A rough CPU measure of the sampler, off by default (`STELLA_SAMPLER_BENCH=1`; meaningful in a
/// release build): SDK-like trace batches through the public API, reading, deciding, splicing.
@Suite struct TailSamplerBench {
  static func cpuNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
  }

  /// A batch like an SDK's: 64 traces of 8 spans, attributes and an event on every span, one
  /// error trace in 16.
  static func batch(_ index: Int) throws -> AdmittedRequest {
    var generator = SplitMix(seed: UInt64(index))
    var resource = Opentelemetry_Proto_Trace_V1_ResourceSpans()
    resource.resource.attributes = [
      attribute("service.name", "checkout"), attribute("host.name", "node-\(index % 7)"),
      attribute("telemetry.sdk.language", "go"), attribute("telemetry.sdk.version", "1.31.0"),
    ]
    resource.schemaURL = "https://opentelemetry.io/schemas/1.26.0"
    var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
    scope.scope.name = "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
    scope.scope.version = "0.56.0"
    for trace in 0..<64 {
      let traceID = Data((0..<16).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
      for spanIndex in 0..<8 {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = traceID
        span.spanID = Data((0..<8).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        span.parentSpanID = spanIndex == 0 ? Data() : Data(repeating: 1, count: 8)
        span.name = "GET /api/v1/cart/{id}"
        span.kind = .server
        span.startTimeUnixNano = 1_700_000_000_000_000_000 + UInt64(index) * 1_000_000
        span.endTimeUnixNano = span.startTimeUnixNano + 3_000_000
        span.attributes = [
          attribute("http.request.method", "GET"), attribute("url.path", "/api/v1/cart/\(trace)"),
          attribute("server.address", "checkout.internal"), attribute("user_agent.original", "Mozilla/5.0"),
        ]
        var event = Opentelemetry_Proto_Trace_V1_Span.Event()
        event.name = "cache.miss"
        event.timeUnixNano = span.startTimeUnixNano + 1000
        span.events = [event]
        if trace % 16 == 0, spanIndex == 7 { span.status.code = .error }
        scope.spans.append(span)
      }
    }
    resource.scopeSpans = [scope]
    var export = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
    export.resourceSpans = [resource]
    return AdmittedRequest(signal: .traces, tenant: "acme", request: try export.serializedBytes(), receivedUnixNano: 1)
  }

  static func attribute(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
    var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
    attribute.key = key
    attribute.value.stringValue = value
    return attribute
  }

  struct SplitMix {
    var state: UInt64
    // Seeds 2^32 steps apart, so the batches' streams (and trace ids) never overlap.
    init(seed: UInt64) { state = (seed << 32) &* 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
  }

  @Test(.enabled(if: ProcessInfo.processInfo.environment["STELLA_SAMPLER_BENCH"] != nil))
  func samplingCPU() throws {
    let requests = try (0..<400).map(Self.batch)
    let bytes = requests.reduce(0) { $0 + $1.request.count }
    var policy = SamplingPolicy()
    policy.limits.maxQueuedBytes = 1 << 30
    policy.limits.maxBufferedBytes = 1 << 30
    policy.limits.maxBufferedSpans = 1 << 30
    for round in 0..<3 {
      let emitted = Mutex(0)
      let sampler = TailSampler(
        policy: policy, isKeptInFull: { _ in false },
        output: { request in emitted.withLock { $0 += request.request.count } })
      let start = Self.cpuNanos()
      for request in requests { sampler.observe(request) }
      sampler.flush()
      let cpu = Self.cpuNanos() - start
      sampler.stop()
      let spans = sampler.counters.spansKept + sampler.counters.spansDropped
      print(
        "sampler bench round \(round): \(requests.count) requests, \(bytes) bytes, \(spans) spans, "
          + "\(emitted.withLock { $0 }) bytes emitted, CPU \(cpu / 1_000_000) ms, "
          + "\(cpu / max(spans, 1)) ns/span")
    }
  }
}
