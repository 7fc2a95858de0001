import Foundation
import OTLPProto
import OTLPWire
import SwiftProtobuf
import Testing

/// The committed SDK fixtures and SDK-shaped requests: accepted, with the old walk's times.
@Suite struct FixtureTests {
  static let otlpFixtures = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("fixtures/otlp")

  /// The records of `app.otlp.pb` (4-byte big-endian length, then a request): 2 trace, 3 logs
  /// and 2 metrics requests, in that order.
  static func protoRecords() throws -> [(WireSignal, [UInt8])] {
    let stream = [UInt8](try Data(contentsOf: otlpFixtures.appendingPathComponent("app.otlp.pb")))
    var records: [[UInt8]] = []
    var position = 0
    while position + 4 <= stream.count {
      let length = stream[position..<position + 4].reduce(0) { $0 << 8 | Int($1) }
      position += 4
      records.append(Array(stream[position..<min(stream.count, position + length)]))
      position += length
    }
    let signals: [WireSignal] = [.traces, .traces, .logs, .logs, .logs, .metrics, .metrics]
    return zip(signals, records).map { ($0, $1) }
  }

  @Test func fixtureRequestsAreAcceptedWithTheTimeWalksTimes() throws {
    let records = try Self.protoRecords()
    #expect(records.count == 7)
    var totals: [WireSignal: UInt64] = [:]
    for (signal, request) in records {
      expectCheck(request, signal, accepted: true)
      let facts = try OTLPWireReader.check(request, signal: signal)
      #expect(facts.times == (try OTLPWireReader.scanTimes(request, signal: signal)))
      totals[signal, default: 0] += facts.times.itemCount
      // The same bytes read as another signal: both oracles still decide together.
      for other in WireSignal.allCases where other != signal {
        let oracle = Oracle.protobufAccepts(request, other) && Oracle.timeWalkAccepts(request, other)
        #expect(((try? OTLPWireReader.check(request, signal: other)) != nil) == oracle)
      }
    }
    #expect(totals == [.traces: 12, .logs: 7, .metrics: 13])
  }

  @Test func sdkShapedRequestsAreAccepted() throws {
    let requests: [(WireSignal, [UInt8])] = [
      (.traces, SDKRequests.bytes(SDKRequests.traces())), (.logs, SDKRequests.bytes(SDKRequests.logs())),
      (.metrics, SDKRequests.bytes(SDKRequests.metrics())),
    ]
    for (signal, request) in requests {
      expectCheck(request, signal, accepted: true)
    }
    let traces = try OTLPWireReader.check(requests[0].1, signal: .traces)
    #expect(traces.times.itemCount == 32)
    let metrics = try OTLPWireReader.check(requests[2].1, signal: .metrics)
    #expect(metrics.times.itemCount == 10)
    #expect(metrics.times.range == (7, 1_718_000_003_000_000_000))
  }

  @Test func timesMatchTheDecodedMessages() throws {
    let request = SDKRequests.traces(seed: 9)
    let facts = try OTLPWireReader.check(SDKRequests.bytes(request), signal: .traces)
    let spans = request.resourceSpans.flatMap { $0.scopeSpans.flatMap(\.spans) }
    #expect(facts.times.itemCount == UInt64(spans.count))
    #expect(facts.times.minTime == spans.map(\.startTimeUnixNano).min())
    #expect(facts.times.maxTime == spans.map(\.endTimeUnixNano).max())
    let logs = SDKRequests.logs()
    let logFacts = try OTLPWireReader.check(SDKRequests.bytes(logs), signal: .logs)
    let effective = logs.resourceLogs[0].scopeLogs[0].logRecords.map {
      $0.timeUnixNano != 0 ? $0.timeUnixNano : $0.observedTimeUnixNano
    }
    #expect(logFacts.times.range == (effective.min() ?? 0, effective.max() ?? 0))
  }

  /// Random byte edits of real requests: the check and swift-protobuf + the walk always agree.
  @Test func mutatedRequestsAgreeWithSwiftProtobuf() throws {
    var random = SDKRequests.Generator(state: 42)
    var corpus = try Self.protoRecords()
    corpus += [
      (.traces, SDKRequests.bytes(SDKRequests.traces(resources: 1, scopesPerResource: 1, spansPerScope: 3))),
      (.logs, SDKRequests.bytes(SDKRequests.logs(records: 3))), (.metrics, SDKRequests.bytes(SDKRequests.metrics())),
    ]
    var accepted = 0
    var refused = 0
    for round in 0..<3000 {
      let (signal, original) = corpus[round % corpus.count]
      var bytes = original
      for _ in 0..<(1 + Int(random.next() % 3)) where !bytes.isEmpty {
        let index = Int(random.next() % UInt64(bytes.count))
        switch random.next() % 4 {
        case 0: bytes[index] = UInt8(truncatingIfNeeded: random.next())
        case 1: bytes[index] ^= 1 << (random.next() % 8)
        case 2: bytes.remove(at: index)
        default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
        }
      }
      let oracle = Oracle.protobufAccepts(bytes, signal) && Oracle.timeWalkAccepts(bytes, signal)
      let mine = (try? OTLPWireReader.check(bytes, signal: signal)) != nil
      #expect(mine == oracle, "round \(round): \(bytes)")
      if oracle { accepted += 1 } else { refused += 1 }
    }
    #expect(accepted > 100 && refused > 100)
  }
}
