import Foundation
import OTLPProto
import OTLPWire
import SwiftProtobuf
import Testing
import WireTestSupport

/// Replay's timestamp walk: which fixed64 fields it visits, what it refuses, how a shift moves them.
@Suite struct TimestampTests {
  func shifted(_ request: [UInt8], _ signal: WireSignal, by offset: Int64) throws -> [UInt8] {
    var copy = request
    try copy.withUnsafeMutableBytes { raw in
      Result { () throws(OTLPWireError) in try OTLPWireReader.shiftTimestamps(in: raw, signal: signal, by: offset) }
    }.get()
    return copy
  }

  func offsets(_ request: [UInt8], _ signal: WireSignal) throws -> [Int] {
    var found: [Int] = []
    try request.withUnsafeBytes { raw in
      Result { () throws(OTLPWireError) in
        try OTLPWireReader.forEachTimestamp(in: raw, signal: signal) { found.append($0) }
      }
    }.get()
    return found
  }

  func times(_ request: [UInt8], _ signal: WireSignal) throws -> [UInt64] {
    try offsets(request, signal).map { offset in
      (0..<8).reduce(UInt64(0)) { $0 | UInt64(request[offset + $1]) << (8 * UInt64($1)) }
    }
  }

  func refusal(_ request: [UInt8], _ signal: WireSignal = .traces) -> OTLPWireError? {
    do {
      _ = try offsets(request, signal)
      return nil
    } catch {
      return error as? OTLPWireError
    }
  }

  // MARK: - Hand-encoded requests (moved from ReplayTests)

  @Test func spanStartEndAndEventTimesShiftAndNothingElseChanges() throws {
    let event = Wire.field(11, bytes: Wire.fixed64(1, 150) + Wire.field(2, bytes: Array("ev".utf8)))
    // A fixed64 field 12 in a span is not a time (it would be a varint, but stands for "other").
    let span =
      Wire.field(1, bytes: [UInt8](repeating: 0xAB, count: 16)) + Wire.fixed64(7, 100) + Wire.fixed64(8, 200) + event
      + Wire.fixed64(12, 999)
    let request = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: span)))
    let result = try shifted(request, .traces, by: 1_000)
    #expect(result.count == request.count)
    #expect(try times(result, .traces) == [1_100, 1_200, 1_150])
    let expected =
      Wire.field(1, bytes: [UInt8](repeating: 0xAB, count: 16)) + Wire.fixed64(7, 1_100) + Wire.fixed64(8, 1_200)
      + Wire.field(11, bytes: Wire.fixed64(1, 1_150) + Wire.field(2, bytes: Array("ev".utf8))) + Wire.fixed64(12, 999)
    #expect(result == Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: expected))))
  }

  @Test func logTimeAndObservedTimeShiftButZeroStaysUnset() throws {
    let request = Wire.logs([(0, 500), (700, 800)])
    let result = try shifted(request, .logs, by: -100)
    #expect(try times(result, .logs) == [0, 400, 600, 700])
  }

  @Test func everyMetricPointKindAndExemplarsShift() throws {
    let exemplar = Wire.fixed64(2, 50)
    let number = Wire.fixed64(2, 10) + Wire.fixed64(3, 20) + Wire.field(5, bytes: exemplar)
    let histogram = Wire.fixed64(2, 11) + Wire.fixed64(3, 21) + Wire.field(8, bytes: exemplar)
    let exponential = Wire.fixed64(2, 12) + Wire.fixed64(3, 22) + Wire.field(11, bytes: exemplar)
    let summary = Wire.fixed64(2, 13) + Wire.fixed64(3, 23)
    let metrics =
      Wire.field(2, bytes: Wire.field(5, bytes: Wire.field(1, bytes: number)))
      + Wire.field(2, bytes: Wire.field(7, bytes: Wire.field(1, bytes: number)))
      + Wire.field(2, bytes: Wire.field(9, bytes: Wire.field(1, bytes: histogram)))
      + Wire.field(2, bytes: Wire.field(10, bytes: Wire.field(1, bytes: exponential)))
      + Wire.field(2, bytes: Wire.field(11, bytes: Wire.field(1, bytes: summary)))
    let request = Wire.field(1, bytes: Wire.field(2, bytes: metrics))
    let result = try shifted(request, .metrics, by: 5)
    #expect(
      try times(result, .metrics) == [15, 25, 55, 15, 25, 55, 16, 26, 55, 17, 27, 55, 18, 28])
    #expect(result.count == request.count)
  }

  @Test func newestTimestampIsTheLargestOnThePath() throws {
    let newest = { (request: [UInt8], signal: WireSignal) throws -> UInt64 in
      try request.withUnsafeBytes { raw in
        Result { () throws(OTLPWireError) in try OTLPWireReader.newestTimestamp(in: raw, signal: signal) }
      }.get()
    }
    #expect(try newest(Wire.traces([(100, 900), (300, 400)]), .traces) == 900)
    #expect(try newest(Wire.logs([(0, 0)]), .logs) == 0)
    #expect(try newest([], .metrics) == 0)
  }

  @Test func groupsAreSkippedLikeTheVerifierDoes() throws {
    // Field 5 start group, a varint inside, end group; then a span.
    let request = [0x2B, 0x08, 0x01, 0x2C] + Wire.traces([(7, 8)])
    #expect(try times(request, .traces) == [7, 8])
  }

  // MARK: - Every path, on requests built with the generated messages

  /// Every fixed64 field of every message on or near the paths gets its own value; the walk
  /// must visit exactly the timestamps, in wire order (swift-protobuf writes fields in number order).
  @Test func everyTimestampPathOfEachSignalIsVisited() throws {
    var next: UInt64 = 1_000
    var expected: [UInt64] = []
    func time() -> UInt64 {
      next += 1
      expected.append(next)
      return next
    }

    let traces = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest.with { request in
      request.resourceSpans = (0..<2).map { _ in
        .with { resource in
          resource.resource.attributes = [
            .with {
              $0.key = "d"
              $0.value.doubleValue = 1.5
            }
          ]
          resource.scopeSpans = (0..<2).map { _ in
            .with { scope in
              scope.spans = (0..<2).map { _ in
                .with { span in
                  span.startTimeUnixNano = time()
                  span.endTimeUnixNano = time()
                  span.events = (0..<2).map { _ in .with { $0.timeUnixNano = time() } }
                  span.links = [.with { $0.flags = 1 }]
                  span.attributes = [
                    .with {
                      $0.key = "d"
                      $0.value.doubleValue = 2.5
                    }
                  ]
                }
              }
            }
          }
        }
      }
    }
    #expect(try times(SDKRequests.bytes(traces), .traces) == expected)

    expected = []
    let logs = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest.with { request in
      request.resourceLogs = [
        .with { resource in
          resource.scopeLogs = (0..<2).map { _ in
            .with { scope in
              scope.logRecords = (0..<3).map { _ in
                .with { record in
                  record.timeUnixNano = time()
                  record.observedTimeUnixNano = time()
                  record.body.doubleValue = 3.5
                }
              }
            }
          }
        }
      ]
    }
    #expect(try times(SDKRequests.bytes(logs), .logs) == expected)

    expected = []
    typealias Exemplar = Opentelemetry_Proto_Metrics_V1_Exemplar
    func exemplars() -> [Exemplar] {
      (0..<2).map { _ in
        .with {
          $0.timeUnixNano = time()
          $0.asDouble = 0.5
        }
      }
    }
    typealias NumberPoint = Opentelemetry_Proto_Metrics_V1_NumberDataPoint
    func numberPoint() -> NumberPoint {
      .with {
        $0.startTimeUnixNano = time()
        $0.timeUnixNano = time()
        $0.asDouble = 4.5
        $0.exemplars = exemplars()
      }
    }
    let metrics = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest.with { request in
      request.resourceMetrics = [
        .with { resource in
          resource.scopeMetrics = [
            .with { scope in
              scope.metrics = [
                .with { $0.gauge.dataPoints = [numberPoint(), numberPoint()] },
                .with { $0.sum.dataPoints = [numberPoint()] },
                .with {
                  $0.histogram.dataPoints = [
                    .with {
                      $0.startTimeUnixNano = time()
                      $0.timeUnixNano = time()
                      $0.count = 3
                      $0.sum = 1.5
                      $0.bucketCounts = [1, 2]
                      $0.explicitBounds = [1]
                      $0.exemplars = exemplars()
                      $0.min = 0.25
                      $0.max = 0.75
                    }
                  ]
                },
                .with {
                  $0.exponentialHistogram.dataPoints = [
                    .with {
                      $0.startTimeUnixNano = time()
                      $0.timeUnixNano = time()
                      $0.count = 3
                      $0.sum = 1.5
                      $0.zeroCount = 1
                      $0.exemplars = exemplars()
                      $0.min = 0.25
                      $0.max = 0.75
                      $0.zeroThreshold = 0.125
                    }
                  ]
                },
                .with {
                  $0.summary.dataPoints = [
                    .with {
                      $0.startTimeUnixNano = time()
                      $0.timeUnixNano = time()
                      $0.count = 3
                      $0.sum = 1.5
                      $0.quantileValues = [
                        .with {
                          $0.quantile = 0.5
                          $0.value = 2
                        }
                      ]
                    }
                  ]
                },
              ]
            }
          ]
        }
      ]
    }
    let metricBytes = SDKRequests.bytes(metrics)
    #expect(try times(metricBytes, .metrics) == expected)
    // The same bytes read as another signal follow that signal's paths instead.
    #expect(try times(metricBytes, .traces) == [])
  }

  /// A shift moves every timestamp of an SDK request, leaves zero ones and everything else as
  /// it was, and keeps the length.
  @Test func shiftedSDKRequestsDecodeWithEveryTimeMoved() throws {
    let offset: Int64 = -1_000_000_000
    let delta = UInt64(offset.magnitude)
    var traces = SDKRequests.traces(seed: 5)
    let traceBytes = SDKRequests.bytes(traces)
    let shiftedTraces = try shifted(traceBytes, .traces, by: offset)
    #expect(shiftedTraces.count == traceBytes.count)
    for r in traces.resourceSpans.indices {
      for s in traces.resourceSpans[r].scopeSpans.indices {
        for i in traces.resourceSpans[r].scopeSpans[s].spans.indices {
          traces.resourceSpans[r].scopeSpans[s].spans[i].startTimeUnixNano -= delta
          traces.resourceSpans[r].scopeSpans[s].spans[i].endTimeUnixNano -= delta
          for e in traces.resourceSpans[r].scopeSpans[s].spans[i].events.indices {
            traces.resourceSpans[r].scopeSpans[s].spans[i].events[e].timeUnixNano -= delta
          }
        }
      }
    }
    #expect(
      try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: shiftedTraces) == traces)

    var logs = SDKRequests.logs()
    let shiftedLogs = try shifted(SDKRequests.bytes(logs), .logs, by: offset)
    for i in logs.resourceLogs[0].scopeLogs[0].logRecords.indices {
      let record = logs.resourceLogs[0].scopeLogs[0].logRecords[i]
      // Records without time_unix_nano keep it unset.
      if record.timeUnixNano != 0 { logs.resourceLogs[0].scopeLogs[0].logRecords[i].timeUnixNano -= delta }
      logs.resourceLogs[0].scopeLogs[0].logRecords[i].observedTimeUnixNano -= delta
    }
    #expect(try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: shiftedLogs) == logs)
  }

  // MARK: - What is refused, and where

  @Test func malformedWireDataIsRefusedWithItsOffset() throws {
    let span = Wire.field(2, bytes: Wire.fixed64(7, 1))
    let prefix = Wire.field(1, bytes: Wire.field(2, bytes: span))  // a well-formed request first
    let base = prefix.count
    let cases: [(String, [UInt8], Int)] = [
      ("truncated tag varint", [0x80], 0),
      ("truncated value varint", [0x08, 0xFF, 0xFF], 1),
      ("varint whose tenth byte is above 1", [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x02], 1),
      ("length past the end", [0x12, 0x05, 0x01], 1),
      ("fixed64 past the end", [0x09, 1, 2, 3], 1),
      ("fixed32 past the end", [0x0D, 1, 2], 1),
      ("wire type 6", [0x0E], 0),
      ("wire type 7", [0x0F], 0),
      ("field number 0", [0x00, 0x01], 0),
      ("end-group outside a group", [0x0C], 0),
      ("unclosed group", [0x0B, 0x08, 0x01], 1),
      ("unclosed nested group", [0x0B, 0x13, 0x14], 1),
      ("wire type 7 inside a group", [0x0B, 0x0F, 0x0C], 1),
    ]
    for (name, tail, offset) in cases {
      let error = refusal(prefix + tail)
      #expect(error?.offset == base + offset, "\(name): \(String(describing: error))")
    }
    // Inside a span, the message names where it was.
    let inner = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: [0x39, 1, 2])))
    let error = refusal(inner)
    #expect(error?.offset == 7)
    #expect(error?.message.hasPrefix("Span.") == true)
  }

  @Test func everyTruncationIsRefused() throws {
    // One resource_spans field: every proper prefix cuts a path message short.
    let request = SDKRequests.bytes(SDKRequests.traces(resources: 1, scopesPerResource: 1, spansPerScope: 6))
    #expect(try offsets(request, .traces).count == 6 * 2 + 2)  // start and end, and spans 0 and 5 have an event
    #expect(try offsets([], .traces) == [])
    for length in 1..<request.count {
      #expect(refusal(Array(request.prefix(length))) != nil, "prefix of \(length) bytes")
    }
  }

  @Test func onlyPathMessagesAreRead() throws {
    // Span attributes (9) and links (13) hold garbage, a time sent as a varint is not a time,
    // a 10-byte tag and a field number above 2^32 are accepted: replay has always read it so.
    let garbage: [UInt8] = [0x0F, 0xFF]
    let hugeField = Wire.varint((1 << 40) << 3 | 1) + [UInt8](repeating: 0, count: 8)
    let longTag: [UInt8] =
      [0xB9, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00] + Wire.fixed64(0, 0).dropFirst()
    let span =
      Wire.field(9, bytes: garbage) + Wire.field(13, bytes: garbage) + [0x38, 0x05] + hugeField + longTag
      + Wire.fixed64(8, 77)
    let request = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: span)))
    // longTag is field 7 (0xB9 = 7 << 3 | 1) in 10 bytes: a timestamp like any other.
    #expect(try times(request, .traces) == [0, 77])
    // Field number 0 inside a group is fine, and any end-group closes the innermost group.
    #expect(try times([0x0B, 0x00, 0x01, 0x1C] + Wire.traces([(1, 2)]), .traces) == [1, 2])
  }

  // MARK: - The shift rule

  @Test func shiftsThatLeaveTheRangeAreErrorsNotWraps() throws {
    #expect(throws: OTLPWireError.self) { try shifted(Wire.logs([(50, 0)]), .logs, by: -50) }
    #expect(throws: OTLPWireError.self) { try shifted(Wire.logs([(UInt64.max - 1, 0)]), .logs, by: 2) }
    #expect(try times(try shifted(Wire.logs([(51, 0)]), .logs, by: -50), .logs) == [1, 0])
    #expect(try times(try shifted(Wire.logs([(UInt64.max - 2, 0)]), .logs, by: 2), .logs) == [.max, 0])
    // Zero is "unset" and stays so, even shifted backwards.
    #expect(try times(try shifted(Wire.logs([(0, 0)]), .logs, by: .min), .logs) == [0, 0])
  }

  @Test func anOutOfRangeShiftNamesTheFirstAndStillShiftsTheRest() throws {
    var request = Wire.traces([(10, 500), (20, 30)])
    let positions = try offsets(request, .traces)
    let error = request.withUnsafeMutableBytes { raw -> OTLPWireError? in
      do throws(OTLPWireError) {
        try OTLPWireReader.shiftTimestamps(in: raw, signal: .traces, by: -25)
        return nil
      } catch {
        return error
      }
    }
    #expect(error?.offset == positions[0])
    #expect(error?.message.contains("-25 ns") == true)
    // 10, 20 would leave the range and stay; 500 and 30 moved.
    #expect(try times(request, .traces) == [10, 475, 20, 5])
  }
}
