import Foundation
import OTLPProto
import OTLPWire
import SwiftProtobuf
import Testing

/// Throughput of the check against swift-protobuf's decode, by hand and in release:
/// `OTLPWIRE_BENCH=1 swift test -c release --filter OTLPWireTests.Benchmark`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["OTLPWIRE_BENCH"] != nil))
struct Benchmark {
  /// Bytes per second of this thread's CPU time, not wall time: the build machines are shared,
  /// and other processes' load should not count against the reader.
  static func gigabytesPerSecond(_ bytes: Int, _ iterations: Int, _ body: () -> Void) -> Double {
    body()
    func cpuSeconds() -> Double {
      var now = timespec()
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
      return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
    let start = cpuSeconds()
    for _ in 0..<iterations { body() }
    return Double(bytes * iterations) / (cpuSeconds() - start) / 1e9
  }

  @Test func checkVersusSwiftProtobuf() throws {
    let requests: [(String, WireSignal, [UInt8])] = [
      ("traces", .traces, SDKRequests.bytes(SDKRequests.traces(resources: 2, scopesPerResource: 2, spansPerScope: 64))),
      ("logs", .logs, SDKRequests.bytes(SDKRequests.logs(records: 256))),
      ("metrics", .metrics, SDKRequests.bytes(SDKRequests.metrics())),
    ]
    for (name, signal, request) in requests {
      let iterations = max(200, 200_000_000 / request.count)
      let data = Data(request)
      var sink: UInt64 = 0
      let check = request.withUnsafeBytes { raw in
        Self.gigabytesPerSecond(request.count, iterations) {
          sink &+= (try? OTLPWireReader.check(raw, signal: signal, tenantAttribute: "tenant.id"))?.times.itemCount ?? 0
        }
      }
      let scan = request.withUnsafeBytes { raw in
        Self.gigabytesPerSecond(request.count, iterations) {
          sink &+= (try? OTLPWireReader.scanTimes(raw, signal: signal))?.itemCount ?? 0
        }
      }
      let spans = request.withUnsafeBytes { raw in
        Self.gigabytesPerSecond(request.count, iterations) {
          try? OTLPWireReader.forEachSpan(raw) { sink &+= $0.startTime }
        }
      }
      let protobuf = Self.gigabytesPerSecond(request.count, max(20, iterations / 10)) {
        switch signal {
        case .traces:
          sink &+= UInt64(
            (try? Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: data))?
              .resourceSpans.count ?? 0)
        case .logs:
          sink &+= UInt64(
            (try? Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: data))?.resourceLogs
              .count ?? 0)
        case .metrics:
          sink &+= UInt64(
            (try? Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest(serializedBytes: data))?
              .resourceMetrics.count ?? 0)
        }
      }
      let line = String(
        format:
          "%@ (%d bytes): check %.2f GB/s, scanTimes %.2f GB/s, forEachSpan %.2f GB/s, swift-protobuf decode %.3f GB/s (check %.0fx)",
        name, request.count, check, scan, spans, protobuf, check / protobuf)
      print("BENCH \(line) [\(sink % 2)]")
    }
  }
}
