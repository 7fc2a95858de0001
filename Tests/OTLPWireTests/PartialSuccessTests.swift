import OTLPProto
import OTLPWire
import SwiftProtobuf
import Testing

/// The partial-success count replay reads from an endpoint's `Export…ServiceResponse`.
@Suite struct PartialSuccessTests {
  func rejected(_ response: [UInt8]) -> UInt64 { OTLPWireReader.partialSuccessRejected(inResponse: response) }

  @Test func eachSignalsResponseIsRead() throws {
    let traces = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse.with {
      $0.partialSuccess.rejectedSpans = 3
      $0.partialSuccess.errorMessage = "3 spans too old"
    }
    let logs = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceResponse.with {
      $0.partialSuccess.errorMessage = "first"
      $0.partialSuccess.rejectedLogRecords = 70_000
    }
    let metrics = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceResponse.with {
      $0.partialSuccess.rejectedDataPoints = 1
    }
    #expect(rejected(try traces.serializedBytes()) == 3)
    #expect(rejected(try logs.serializedBytes()) == 70_000)
    #expect(rejected(try metrics.serializedBytes()) == 1)
    // The buffer form reads the same.
    let bytes: [UInt8] = try traces.serializedBytes()
    #expect(bytes.withUnsafeBytes { OTLPWireReader.partialSuccessRejected(inResponse: $0) } == 3)
  }

  @Test func anAbsentCountIsZero() throws {
    #expect(rejected([]) == 0)
    let empty: [UInt8] = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse().serializedBytes()
    #expect(rejected(empty) == 0)
    let messageOnly = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse.with {
      $0.partialSuccess.errorMessage = "nothing rejected"
    }
    #expect(rejected(try messageOnly.serializedBytes()) == 0)
    // partial_success present but empty; other top-level fields only.
    #expect(rejected([0x0A, 0x00]) == 0)
    #expect(rejected([0x10, 0x05, 0x1A, 0x02, 0x08, 0x07]) == 0)
  }

  @Test func otherFieldsAroundTheCountAreSkipped() {
    // Unknown fields of every skippable wire type before and after, inside and out.
    let inner: [UInt8] = [0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1D, 1, 2, 3, 4, 0x08, 0x2A, 0x20, 0x01]
    let response: [UInt8] = [0x10, 0x01, 0x0A, UInt8(inner.count)] + inner + [0x1A, 0x01, 0x00]
    #expect(rejected(response) == 42)
    // Varints read as swift-protobuf reads them: a negative int64 count is 10 bytes.
    let negative: [UInt8] = [0x0A, 0x0B, 0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01]
    #expect(rejected(negative) == .max)
  }

  @Test func theFirstOccurrenceCounts() {
    #expect(rejected([0x0A, 0x02, 0x08, 0x05, 0x0A, 0x02, 0x08, 0x09]) == 5)
    #expect(rejected([0x0A, 0x04, 0x08, 0x05, 0x08, 0x09]) == 5)
    // A partial_success sent as a varint is the first field 1: no count.
    #expect(rejected([0x08, 0x01, 0x0A, 0x02, 0x08, 0x05]) == 0)
    // A fixed-width field 1 is skipped, not counted as the first.
    #expect(rejected([0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x0A, 0x02, 0x08, 0x05]) == 5)
    // A count sent length-delimited is no count.
    #expect(rejected([0x0A, 0x03, 0x0A, 0x01, 0x05]) == 0)
  }

  @Test func malformedResponsesReadAsZero() {
    let cases: [(String, [UInt8])] = [
      ("truncated count", [0x0A, 0x02, 0x08, 0x85]),
      ("partial_success length past the end", [0x0A, 0x05, 0x08, 0x05]),
      ("truncated tag after the count", [0x0A, 0x02, 0x08, 0x05, 0x80]),
      ("length past the end after the count", [0x0A, 0x02, 0x08, 0x05, 0x12, 0x09]),
      ("group in the response", [0x0A, 0x02, 0x08, 0x05, 0x1B, 0x1C]),
      ("group in partial_success", [0x0A, 0x04, 0x08, 0x05, 0x1B, 0x1C]),
      ("wire type 6", [0x0A, 0x02, 0x08, 0x05, 0x1E]),
      ("wire type 7 in partial_success", [0x0A, 0x03, 0x08, 0x05, 0x1F]),
      ("truncated fixed64", [0x0A, 0x02, 0x08, 0x05, 0x11, 0x00]),
      ("varint over 10 bytes", [0x0A, 0x0C, 0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01]),
    ]
    for (name, response) in cases {
      #expect(rejected(response) == 0, "\(name)")
    }
  }
}
