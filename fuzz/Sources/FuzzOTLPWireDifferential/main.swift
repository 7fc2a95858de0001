import CFuzzerDriver
import Foundation
import OTLPProto
import OTLPWire
import SwiftProtobuf

// Fuzz target: OTLPWireReader.check against its definition. The first input byte chooses the
// signal (bits 0-1: traces, logs, metrics, traces); the rest is the request.
//
// Oracles besides "no crash, no ASan report, no hang":
// - check accepts ⇔ swift-protobuf decodes the signal's Export…ServiceRequest AND scanTimes
//   (the §6.3 walk) accepts; any disagreement aborts, naming both verdicts;
// - when accepted: check's times equal scanTimes'; item count and time range equal the decoded
//   message's (for metrics, the decoded count may be lower: a Metric's `data` oneof keeps only
//   its last member, while §6.3 counts every data point on the wire); the tenant values
//   (`service.name`) equal the decoded resources' distinct string values;
// - traces: forEachSpan gives one fact per decoded span with its trace id, status code, times
//   and service.name, and splicing every other span decodes to exactly those spans;
// - logs: forEachLogRecord gives each decoded record's severity and trace id.

typealias TraceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
typealias LogsRequest = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest
typealias MetricsRequest = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest
typealias Resource = Opentelemetry_Proto_Resource_V1_Resource

let tenantKey = "service.name"

func disagree(_ message: String) -> Never {
  fatalError("FuzzOTLPWireDifferential: \(message)")
}

enum Decoded {
  case traces(TraceRequest)
  case logs(LogsRequest)
  case metrics(MetricsRequest)
}

func decode(_ body: Data, _ signal: WireSignal) -> Decoded? {
  switch signal {
  case .traces: return (try? TraceRequest(serializedBytes: body)).map(Decoded.traces)
  case .logs: return (try? LogsRequest(serializedBytes: body)).map(Decoded.logs)
  case .metrics: return (try? MetricsRequest(serializedBytes: body)).map(Decoded.metrics)
  }
}

/// Distinct `service.name` string values over the resources, first-seen order.
func tenantValues(_ resources: [Resource]) -> [String] {
  var values: [String] = []
  for resource in resources {
    for attribute in resource.attributes where attribute.key == tenantKey {
      if case .stringValue(let value)? = attribute.value.value, !values.contains(value) { values.append(value) }
    }
  }
  return values
}

func serviceName(_ resource: Resource) -> String? {
  for attribute in resource.attributes.reversed() where attribute.key == tenantKey {
    if case .stringValue(let value)? = attribute.value.value { return value }
  }
  return nil
}

func text(_ body: UnsafeRawBufferPointer, _ range: Range<Int>?) -> String? {
  range.map { String(decoding: UnsafeRawBufferPointer(rebasing: body[$0]), as: UTF8.self) }
}

func checkFacts(_ facts: OTLPRequestFacts, _ decoded: Decoded, _ raw: UnsafeRawBufferPointer) {
  var expectedCount: UInt64 = 0
  var expectedRange: (UInt64, UInt64) = (.max, 0)
  var resources: [Resource] = []
  switch decoded {
  case .traces(let request):
    resources = request.resourceSpans.map(\.resource)
    var spanFacts: [SpanFacts] = []
    do {
      try OTLPWireReader.forEachSpan(raw) { spanFacts.append($0) }
    } catch {
      disagree("forEachSpan refused an accepted request: \(error)")
    }
    var index = 0
    for resourceSpans in request.resourceSpans {
      for scopeSpans in resourceSpans.scopeSpans {
        for span in scopeSpans.spans {
          expectedCount += 1
          expectedRange = (min(expectedRange.0, span.startTimeUnixNano), max(expectedRange.1, span.endTimeUnixNano))
          guard index < spanFacts.count else {
            disagree("forEachSpan gave \(spanFacts.count) spans, fewer than decoded")
          }
          let fact = spanFacts[index]
          index += 1
          if Data(raw[fact.traceID]) != span.traceID { disagree("span \(index - 1): trace id differs") }
          if fact.statusCode != Int32(truncatingIfNeeded: span.status.code.rawValue) {
            disagree("span \(index - 1): status \(fact.statusCode), decoded \(span.status.code.rawValue)")
          }
          if fact.startTime != span.startTimeUnixNano || fact.endTime != span.endTimeUnixNano {
            disagree("span \(index - 1): times differ")
          }
          if text(raw, fact.serviceName) != serviceName(resourceSpans.resource) {
            disagree("span \(index - 1): service.name differs")
          }
        }
      }
    }
    if index != spanFacts.count { disagree("forEachSpan gave \(spanFacts.count) spans, decoded \(index)") }
    checkSplice(raw, spanFacts, request)
  case .logs(let request):
    resources = request.resourceLogs.map(\.resource)
    var recordFacts: [LogRecordFacts] = []
    do {
      try OTLPWireReader.forEachLogRecord(raw) { recordFacts.append($0) }
    } catch {
      disagree("forEachLogRecord refused an accepted request: \(error)")
    }
    let records = request.resourceLogs.flatMap { $0.scopeLogs.flatMap(\.logRecords) }
    if records.count != recordFacts.count {
      disagree("forEachLogRecord gave \(recordFacts.count), decoded \(records.count)")
    }
    for (record, fact) in zip(records, recordFacts) {
      expectedCount += 1
      let time = record.timeUnixNano != 0 ? record.timeUnixNano : record.observedTimeUnixNano
      expectedRange = (min(expectedRange.0, time), max(expectedRange.1, time))
      if fact.severityNumber != Int32(truncatingIfNeeded: record.severityNumber.rawValue) {
        disagree("severity differs")
      }
      if Data(raw[fact.traceID]) != record.traceID { disagree("log trace id differs") }
    }
  case .metrics(let request):
    resources = request.resourceMetrics.map(\.resource)
    for metric in request.resourceMetrics.flatMap({ $0.scopeMetrics.flatMap(\.metrics) }) {
      let times: [UInt64]
      switch metric.data {
      case .gauge(let gauge)?: times = gauge.dataPoints.map(\.timeUnixNano)
      case .sum(let sum)?: times = sum.dataPoints.map(\.timeUnixNano)
      case .histogram(let histogram)?: times = histogram.dataPoints.map(\.timeUnixNano)
      case .exponentialHistogram(let histogram)?: times = histogram.dataPoints.map(\.timeUnixNano)
      case .summary(let summary)?: times = summary.dataPoints.map(\.timeUnixNano)
      case nil: times = []
      }
      expectedCount += UInt64(times.count)
      for time in times { expectedRange = (min(expectedRange.0, time), max(expectedRange.1, time)) }
    }
  }
  let times = facts.times
  if case .metrics = decoded {
    if expectedCount > times.itemCount { disagree("decoded \(expectedCount) data points, wire \(times.itemCount)") }
  } else {
    if expectedCount != times.itemCount { disagree("decoded \(expectedCount) items, check counted \(times.itemCount)") }
    if expectedCount > 0 && (times.minTime, times.maxTime) != expectedRange {
      disagree("decoded time range \(expectedRange), check \(times.range)")
    }
  }
  let expectedTenants = tenantValues(resources)
  let tenants = facts.tenantValues.strings(in: raw)
  if tenants != Array(expectedTenants.prefix(OTLPTenantValues.capacity))
    || facts.tenantValues.hasMore != (expectedTenants.count > OTLPTenantValues.capacity)
  {
    disagree("tenant values \(tenants) (more: \(facts.tenantValues.hasMore)), decoded \(expectedTenants)")
  }
}

func checkSplice(_ raw: UnsafeRawBufferPointer, _ spans: [SpanFacts], _ request: TraceRequest) {
  let decodedSpans = request.resourceSpans.flatMap { $0.scopeSpans.flatMap(\.spans) }
  let keptIndexes = spans.indices.filter { $0 % 2 == 0 }
  let spliced: [UInt8]
  do {
    spliced = try OTLPTraceSplice.request(from: raw, keeping: keptIndexes.map { spans[$0] })
  } catch {
    disagree("splice refused facts from forEachSpan: \(error)")
  }
  guard let result = try? TraceRequest(serializedBytes: spliced) else { disagree("spliced request does not decode") }
  let resultSpans = result.resourceSpans.flatMap { $0.scopeSpans.flatMap(\.spans) }
  // Spans come out grouped by resource, then scope, in first-seen order: sort both sides the same way.
  let expected = keptIndexes.sorted {
    (spans[$0].resourceSpans.lowerBound, spans[$0].scopeSpans.lowerBound, $0)
      < (spans[$1].resourceSpans.lowerBound, spans[$1].scopeSpans.lowerBound, $1)
  }.map { decodedSpans[$0] }
  if resultSpans != expected { disagree("spliced request holds other spans than kept") }
  if (try? OTLPWireReader.check(spliced, signal: .traces)) == nil { disagree("spliced request fails check") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOTLPWireDifferential(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  guard let data, size > 0 else { return 0 }
  let signals: [WireSignal] = [.traces, .logs, .metrics, .traces]
  let signal = signals[Int(data[0] & 3)]
  let raw = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
  let body = Data(raw)
  let decoded = decode(body, signal)
  let scanned = try? OTLPWireReader.scanTimes(raw, signal: signal)
  let checked: Result<OTLPRequestFacts, OTLPWireError>
  do {
    checked = .success(try OTLPWireReader.check(raw, signal: signal, tenantAttribute: tenantKey))
  } catch {
    checked = .failure(error)
  }
  switch (checked, decoded, scanned) {
  case (.success(let facts), let decoded?, let scanned?):
    if facts.times != scanned { disagree("check times \(facts.times), scanTimes \(scanned)") }
    checkFacts(facts, decoded, raw)
  case (.success, _, _):
    disagree("check accepted; swift-protobuf \(decoded != nil), scanTimes \(scanned != nil) (\(signal.name))")
  case (.failure(let error), nil, _), (.failure(let error), _, nil):
    if error.message.isEmpty { disagree("refusal without a message") }
  case (.failure(let error), _?, _?):
    disagree("check refused (\(error)) what swift-protobuf and scanTimes accept (\(signal.name))")
  }
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzOTLPWireDifferential_main`.
@_cdecl("FuzzOTLPWireDifferential_main")
public func fuzzOTLPWireDifferentialMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  var count = argc
  var arguments = argv
  return LLVMFuzzerRunDriver(&count, &arguments, fuzzOTLPWireDifferential)
}
