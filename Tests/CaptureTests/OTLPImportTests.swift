import Capture
import EvidenceIO
import Foundation
import Manifest
import OTLPProto
import Testing

@testable import Seal

private typealias TraceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
private typealias LogsRequest = Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest
private typealias MetricsRequest =
  Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func importJSON(_ text: String) throws(ImportError) -> [ImportedRecord] {
  let result = try OTLPFileImporter.read(bytes: bytes(text), path: "in.jsonl")
  #expect(result.format == .jsonLines)
  #expect(result.compressed == false)
  return result.records
}

private func hexBytes(_ hex: String) -> [UInt8] {
  var out: [UInt8] = []
  var chars = Array(hex.utf8)[...]
  while chars.count >= 2,
    let byte = UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)
  {
    out.append(byte)
    chars = chars.dropFirst(2)
  }
  return out
}

/// Expects `body` to throw an ImportError and returns it.
func importError(_ body: () throws -> Void) -> ImportError? {
  do {
    try body()
  } catch let error as ImportError {
    return error
  } catch {
    Issue.record("expected an ImportError, got \(error)")
    return nil
  }
  Issue.record("expected an ImportError")
  return nil
}

private let traceID = "5b8efff798038103d269b633813fc60c"
private let spanID = "eee19b7ec3c1b174"
private let parentID = "eee19b7ec3c1b173"
private let linkTraceID = "0af7651916cd43dd8448eb211c80319c"
private let linkSpanID = "b7ad6b7169203331"

/// One span in camelCase with ids in spans and links.
private let camelSpanLine = #"""
  {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},\#
  "scopeSpans":[{"scope":{"name":"lib","version":"1"},"spans":[{"traceId":"\#(traceID)","spanId":"\#(spanID)",\#
  "parentSpanId":"\#(parentID)","name":"op","kind":2,"startTimeUnixNano":"1718000000000010243",\#
  "endTimeUnixNano":"1718000000000020243","links":[{"traceId":"\#(linkTraceID)","spanId":"\#(linkSpanID)"}],\#
  "status":{"code":2,"message":"boom"}}]}]}]}
  """#

/// The same span in the original proto (snake_case) names, enums as names, times as numbers.
private let snakeSpanLine = #"""
  {"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"svc"}}]},\#
  "scope_spans":[{"scope":{"name":"lib","version":"1"},"spans":[{"trace_id":"\#(traceID)","span_id":"\#(spanID)",\#
  "parent_span_id":"\#(parentID)","name":"op","kind":"SPAN_KIND_SERVER","start_time_unix_nano":1718000000000010243,\#
  "end_time_unix_nano":1718000000000020243,"links":[{"trace_id":"\#(linkTraceID)","span_id":"\#(linkSpanID)"}],\#
  "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}
  """#

// Lines written by the Python SDK's opentelemetry-exporter-otlp-json-file 0.66b1 (resource
// attributes trimmed).
private let pythonTraceLine = #"""
  {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"sample"}},{"key":"big","value":{"intValue":"4611686018427387907"}},{"key":"f","value":{"doubleValue":1.5}},{"key":"b","value":{"bytesValue":"AQI="}},{"key":"l","value":{"arrayValue":{"values":[{"intValue":"1"},{"intValue":"2"}]}}}]},"scopeSpans":[{"scope":{"name":"t","version":"1.0"},"spans":[{"traceId":"bfeba1211714a5257c5a2591100d5059","spanId":"b1920731d7c46e4d","parentSpanId":"a0d4fec2ad57d351","flags":256,"name":"child","kind":1,"startTimeUnixNano":"1795590016309347831","endTimeUnixNano":"1795590016309380842","events":[{"timeUnixNano":"1795590016309364390","name":"ev","attributes":[{"key":"n","value":{"intValue":"3"}}]}],"links":[{"traceId":"bfeba1211714a5257c5a2591100d5059","spanId":"a0d4fec2ad57d351","attributes":[{"key":"x","value":{"intValue":"1"}}],"flags":256}],"status":{"message":"bad","code":2}}]}]}]}
  """#
private let pythonLogLine = #"""
  {"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"sample"}}]},"scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"timeUnixNano":"1795590016310233600","observedTimeUnixNano":"1795590016310288528","severityNumber":13,"severityText":"WARN","body":{"stringValue":"hello world"},"attributes":[{"key":"code.line.number","value":{"intValue":"27"}}],"flags":3,"traceId":"34b457669278abf31b429da7795fb348","spanId":"8047f7b5f8673ece"}]}]}]}
  """#
private let pythonMetricLine = #"""
  {"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"sample"}}]},"scopeMetrics":[{"scope":{"name":"m"},"metrics":[{"name":"c","sum":{"dataPoints":[{"attributes":[{"key":"a","value":{"stringValue":"b"}}],"startTimeUnixNano":"1795590016311163453","timeUnixNano":"1795590016311555401","asInt":"5"}],"aggregationTemporality":2,"isMonotonic":true}},{"name":"h","histogram":{"dataPoints":[{"startTimeUnixNano":"1795590016311232444","timeUnixNano":"1795590016311555401","count":"3","sum":12.5,"bucketCounts":["0","2","1","0"],"explicitBounds":[0.0,5.0,10.0],"exemplars":[{"timeUnixNano":"1795590016311503662","spanId":"8858e6343b8b8507","traceId":"d154acfd0bd5844af40b7fc2e7d9eeba","asInt":"3"}],"min":2.5,"max":7}],"aggregationTemporality":2}},{"name":"ud","sum":{"dataPoints":[{"startTimeUnixNano":"1795590016311301990","timeUnixNano":"1795590016311555401","asInt":"-3"}],"aggregationTemporality":2}},{"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"1795590016311555401","asDouble":1.25}]}}]}]}]}
  """#

private func sampleTraceRequest() -> TraceRequest {
  TraceRequest.with {
    $0.resourceSpans = [
      .with {
        $0.resource.attributes = [
          .with {
            $0.key = "service.name"
            $0.value.stringValue = "svc"
          }
        ]
        $0.scopeSpans = [
          .with {
            $0.scope.name = "lib"
            $0.spans = [
              .with {
                $0.traceID = Data(hexBytes(traceID))
                $0.spanID = Data(hexBytes(spanID))
                $0.name = "op"
                $0.startTimeUnixNano = 1_718_000_000_000_010_243
                $0.endTimeUnixNano = 1_718_000_000_000_020_243
              }
            ]
          }
        ]
      }
    ]
  }
}

private func sampleLogsRequest() -> LogsRequest {
  LogsRequest.with {
    $0.resourceLogs = [
      .with {
        $0.scopeLogs = [
          .with {
            $0.logRecords = [
              .with {
                $0.timeUnixNano = 1_718_000_000_000_000_001
                $0.severityNumber = .warn
                $0.body.stringValue = "disk full"
                $0.traceID = Data(hexBytes(traceID))
              }
            ]
          }
        ]
      }
    ]
  }
}

private func sampleMetricsRequest() -> MetricsRequest {
  MetricsRequest.with {
    $0.resourceMetrics = [
      .with {
        $0.scopeMetrics = [
          .with {
            $0.metrics = [
              .with {
                $0.name = "requests"
                $0.sum = .with {
                  $0.aggregationTemporality = .cumulative
                  $0.isMonotonic = true
                  $0.dataPoints = [
                    .with {
                      $0.timeUnixNano = 1_718_000_000_000_000_002
                      $0.asInt = 42
                    }
                  ]
                }
              }
            ]
          }
        ]
      }
    ]
  }
}

/// `[4-byte big-endian length][message]` for each message, as the Collector file exporter writes.
private func frame(_ messages: [[UInt8]]) -> [UInt8] {
  var out: [UInt8] = []
  for message in messages {
    let length = UInt32(message.count)
    out += [
      UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF),
      UInt8(length & 0xFF),
    ]
    out += message
  }
  return out
}

@Suite("OTLP file import: JSON lines")
struct OTLPJSONImportTests {
  @Test("hex ids in spans and links become 16/8 raw bytes")
  func hexIDs() throws {
    let records = try importJSON(camelSpanLine)
    #expect(records.count == 1)
    #expect(records[0].signal == .traces)
    #expect(records[0].source == ImportSource(path: "in.jsonl", location: .line(1)))
    let request = try TraceRequest(serializedBytes: records[0].request)
    let span = try #require(request.resourceSpans.first?.scopeSpans.first?.spans.first)
    #expect(Array(span.traceID) == hexBytes(traceID))
    #expect(span.traceID.count == 16)
    #expect(Array(span.spanID) == hexBytes(spanID))
    #expect(span.spanID.count == 8)
    #expect(Array(span.parentSpanID) == hexBytes(parentID))
    let link = try #require(span.links.first)
    #expect(Array(link.traceID) == hexBytes(linkTraceID))
    #expect(Array(link.spanID) == hexBytes(linkSpanID))
  }

  @Test("snake_case and lowerCamelCase, enum names and numbers, 64-bit strings and numbers agree")
  func spellingsAgree() throws {
    let camel = try importJSON(camelSpanLine)
    let snake = try importJSON(snakeSpanLine)
    #expect(camel == snake)
    let span = try #require(
      try TraceRequest(serializedBytes: snake[0].request).resourceSpans.first?.scopeSpans.first?
        .spans.first)
    #expect(span.startTimeUnixNano == 1_718_000_000_000_010_243)
    #expect(span.endTimeUnixNano == 1_718_000_000_000_020_243)
    #expect(span.kind == .server)
    #expect(span.status.code == .error)
  }

  @Test("64-bit integers above 2^53 survive exactly, as strings and as numbers")
  func largeIntegers() throws {
    for (time, value) in [
      (#""1718000000000010243""#, #""-9223372036854775807""#),
      ("1718000000000010243", "-9223372036854775807"),
    ] {
      let line = #"""
        {"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":\#(time),\#
        "attributes":[{"key":"n","value":{"intValue":\#(value)}}]}]}]}]}
        """#
      let records = try importJSON(line)
      let log = try #require(
        try LogsRequest(serializedBytes: records[0].request).resourceLogs.first?.scopeLogs.first?
          .logRecords.first)
      #expect(log.timeUnixNano == 1_718_000_000_000_010_243)
      #expect(log.attributes.first?.value.intValue == -9_223_372_036_854_775_807)
    }
  }

  @Test("enum as name and as number")
  func enums() throws {
    let byName = try importJSON(
      #"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_WARN"}]}]}]}"#
    )
    let byNumber = try importJSON(
      #"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":13}]}]}]}"#)
    #expect(byName[0].request == byNumber[0].request)
    let log = try #require(
      try LogsRequest(serializedBytes: byName[0].request).resourceLogs.first?.scopeLogs.first?
        .logRecords.first)
    #expect(log.severityNumber == .warn)
  }

  @Test("ids in log records and metric exemplars; empty ids are empty bytes")
  func logAndExemplarIDs() throws {
    let records = try importJSON(pythonLogLine + "\n" + pythonMetricLine + "\n")
    #expect(records.map(\.signal) == [.logs, .metrics])
    #expect(records.map(\.source.location) == [.line(1), .line(2)])
    let log = try #require(
      try LogsRequest(serializedBytes: records[0].request).resourceLogs.first?.scopeLogs.first?
        .logRecords.first)
    #expect(Array(log.traceID) == hexBytes("34b457669278abf31b429da7795fb348"))
    #expect(Array(log.spanID) == hexBytes("8047f7b5f8673ece"))
    let metrics = try MetricsRequest(serializedBytes: records[1].request)
    let histogram = try #require(
      metrics.resourceMetrics.first?.scopeMetrics.first?.metrics.first { $0.name == "h" })
    let exemplar = try #require(histogram.histogram.dataPoints.first?.exemplars.first)
    #expect(Array(exemplar.traceID) == hexBytes("d154acfd0bd5844af40b7fc2e7d9eeba"))
    #expect(Array(exemplar.spanID) == hexBytes("8858e6343b8b8507"))

    let empty = try importJSON(
      #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"\#(traceID)","spanId":"\#(spanID)","parentSpanId":""}]}]}]}"#
    )
    let span = try #require(
      try TraceRequest(serializedBytes: empty[0].request).resourceSpans.first?.scopeSpans.first?
        .spans.first)
    #expect(span.parentSpanID.isEmpty)
  }

  @Test("lines from the Python SDK's OTLP/JSON file exporter import")
  func pythonExporterLines() throws {
    let records = try importJSON(
      [pythonTraceLine, pythonLogLine, pythonMetricLine].joined(separator: "\n") + "\n")
    #expect(records.map(\.signal) == [.traces, .logs, .metrics])
    let request = try TraceRequest(serializedBytes: records[0].request)
    let resource = try #require(request.resourceSpans.first?.resource)
    #expect(
      resource.attributes.first { $0.key == "big" }?.value.intValue == 4_611_686_018_427_387_907)
    #expect(resource.attributes.first { $0.key == "b" }?.value.bytesValue == Data([1, 2]))
    let span = try #require(request.resourceSpans.first?.scopeSpans.first?.spans.first)
    #expect(Array(span.traceID) == hexBytes("bfeba1211714a5257c5a2591100d5059"))
    #expect(span.flags == 256)
    #expect(span.startTimeUnixNano == 1_795_590_016_309_347_831)
  }

  @Test("upper-case hex and \\u escapes in ids are read as the same bytes")
  func idSpellings() throws {
    let plain = try importJSON(
      #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"\#(spanID)"}]}]}]}"#)
    let upper = try importJSON(
      #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"\#(spanID.uppercased())"}]}]}]}"#)
    let escaped = try importJSON(
      #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"\u0065ee19b7ec3c1b174"}]}]}]}"#)
    #expect(plain[0].request == upper[0].request)
    #expect(plain[0].request == escaped[0].request)
  }

  @Test("JSON and protobuf encodings of one request give the same bytes")
  func crossFormatDeterminism() throws {
    let line = #"""
      {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},\#
      "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"\#(traceID)","spanId":"\#(spanID)",\#
      "name":"op","startTimeUnixNano":"1718000000000010243","endTimeUnixNano":"1718000000000020243"}]}]}]}
      """#
    let fromJSON = try importJSON(line)
    let proto: [UInt8] = try sampleTraceRequest().serializedBytes()
    let fromProto = try OTLPFileImporter.read(bytes: frame([proto]), path: "in.pb").records
    #expect(fromJSON[0].request == fromProto[0].request)
  }

  @Test("blank lines and CRLF line ends are skipped; line numbers count every line")
  func blankLines() throws {
    let text = "\n" + camelSpanLine + "\r\n  \r\n" + pythonLogLine + "\r\n\n"
    let records = try importJSON(text)
    #expect(records.map(\.source.location) == [.line(2), .line(4)])
  }

  @Test("a malformed line names file, line and column")
  func malformedLine() {
    let text = camelSpanLine + "\n" + #"{"resourceSpans":[{"scopeSpans":[}]}"# + "\n"
    let error = importError { _ = try importJSON(text) }
    #expect(error?.code == .malformedJSON)
    #expect(error?.location == .line(2))
    #expect(error?.column == 34)
    #expect(error?.description.hasPrefix("in.jsonl: line 2, column 34: malformed JSON") == true)
  }

  @Test("truncated, trailing-data and non-object lines are malformed")
  func otherSyntaxErrors() {
    for line in [#"{"resourceSpans":[]"#, #"{"resourceSpans":[]} x"#, #"{"a":01}"#, #"{"a":"\x"}"#] {
      let error = importError { _ = try importJSON(line) }
      #expect(error?.code == .malformedJSON, "\(line)")
      #expect(error?.location == .line(1))
    }
    let error = importError { _ = try importJSON("{}\n[1]") }
    #expect(error?.location == .line(1))  // {} has no signal key; it fails first
    let nested = String(repeating: "[", count: 10_000)
    let deep = importError { _ = try importJSON(#"{"resourceSpans":"# + nested) }
    #expect(deep?.code == .malformedJSON)
  }

  @Test(
    "invalid hex ids are refused with the path of the field",
    arguments: [
      ("\(traceID.dropLast(2))", "traceId"),  // 15 bytes
      ("\(traceID)00", "traceId"),  // 17 bytes
      ("5b8efff798038103d269b633813fc60g", "traceId"),  // not hex
      ("W47/95gDgQPSabYzgT/GDA==", "traceId"),  // base64 of 16 bytes
      ("eee19b7ec3c1b17", "spanId"),  // odd length
    ])
  func invalidIDs(value: String, field: String) {
    let line = #"{"resourceSpans":[{"scopeSpans":[{},{"spans":[{},{"\#(field)":"\#(value)"}]}]}]}"#
    let error = importError { _ = try importJSON(camelSpanLine + "\n" + line) }
    #expect(error?.code == .invalidID)
    #expect(error?.location == .line(2))
    #expect(error?.message.contains("resourceSpans[0].scopeSpans[1].spans[1].\(field)") == true)
  }

  @Test("a bad id in a link, log record or exemplar is refused too")
  func invalidNestedIDs() {
    let lines = [
      #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"links":[{"spanId":"abc"}]}]}]}]}"#,
      #"{"resource_logs":[{"scope_logs":[{"log_records":[{"trace_id":"abc"}]}]}]}"#,
      #"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"exemplars":[{"spanId":"zz"}]}]}}]}]}]}"#,
    ]
    for line in lines {
      let error = importError { _ = try importJSON(line) }
      #expect(error?.code == .invalidID, "\(line)")
    }
  }

  @Test("unknown fields, wrong types, missing or mixed signals are refused")
  func schemaErrors() {
    let unknown = importError {
      _ = try importJSON(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"nmae":"x"}]}]}]}"#)
    }
    #expect(unknown?.code == .schema)
    #expect(unknown?.message.contains("nmae") == true)
    let wrongType = importError {
      _ = try importJSON(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":3}]}]}]}"#)
    }
    #expect(wrongType?.code == .schema)
    let none = importError { _ = try importJSON(#"{"foo":[]}"#) }
    #expect(none?.code == .unknownSignal)
    let empty = importError { _ = try importJSON("{}") }
    #expect(empty?.code == .unknownSignal)
    let mixed = importError { _ = try importJSON(#"{"resourceSpans":[],"resourceLogs":[]}"#) }
    #expect(mixed?.code == .unknownSignal)
  }
}

@Suite("OTLP file import: protobuf stream and containers")
struct OTLPProtoImportTests {
  @Test("a length-prefixed stream of the three request types")
  func protoStream() throws {
    let trace: [UInt8] = try sampleTraceRequest().serializedBytes()
    let logs: [UInt8] = try sampleLogsRequest().serializedBytes()
    let metrics: [UInt8] = try sampleMetricsRequest().serializedBytes()
    let result = try OTLPFileImporter.read(
      bytes: frame([trace, logs, metrics, trace]), path: "in.pb")
    #expect(result.format == .protoStream)
    #expect(result.compressed == false)
    #expect(result.records.map(\.signal) == [.traces, .logs, .metrics, .traces])
    #expect(result.records.map(\.request) == [trace, logs, metrics, trace])
    let offsets = [
      0, 4 + trace.count, 8 + trace.count + logs.count,
      12 + trace.count + logs.count + metrics.count,
    ]
    #expect(result.records.map(\.source.location) == offsets.map { .byteOffset($0) })
    let decoded = try MetricsRequest(serializedBytes: result.records[2].request)
    #expect(decoded == sampleMetricsRequest())
  }

  @Test("a stream cut inside a message or a length prefix names the byte offset")
  func truncated() {
    let trace = (try? sampleTraceRequest().serializedBytes() as [UInt8]) ?? []
    let stream = frame([trace, trace])
    let second = 4 + trace.count
    let inMessage = importError {
      _ = try OTLPFileImporter.read(bytes: Array(stream.dropLast(3)), path: "in.pb")
    }
    #expect(inMessage?.code == .truncated)
    #expect(inMessage?.location == .byteOffset(second))
    #expect(
      inMessage?.description.hasPrefix("in.pb: byte offset \(second): truncated message") == true)
    let inPrefix = importError {
      _ = try OTLPFileImporter.read(bytes: Array(stream.prefix(second + 2)), path: "in.pb")
    }
    #expect(inPrefix?.code == .truncated)
    #expect(inPrefix?.location == .byteOffset(second))
  }

  @Test("bytes that are no OTLP request are refused with their offset")
  func garbage() {
    let trace = (try? sampleTraceRequest().serializedBytes() as [UInt8]) ?? []
    let junk: [UInt8] = Array("this is not protobuf at all".utf8)
    let error = importError {
      _ = try OTLPFileImporter.read(bytes: frame([trace, junk]), path: "in.pb")
    }
    #expect(error?.code == .unknownSignal)
    #expect(error?.location == .byteOffset(4 + trace.count))
    // Plain text that does not start with "{" is taken for a stream and fails at once.
    let text = importError { _ = try OTLPFileImporter.read(bytes: bytes("hello\n"), path: "x.txt") }
    #expect(text?.location == .byteOffset(0))
  }

  @Test("a request that holds no item cannot be attributed to a signal")
  func ambiguous() throws {
    let bare = TraceRequest.with {
      $0.resourceSpans = [.with { $0.resource.attributes = [.with { $0.key = "k" }] }]
    }
    let message: [UInt8] = try bare.serializedBytes()
    let error = importError {
      _ = try OTLPFileImporter.read(bytes: frame([message]), path: "in.pb")
    }
    #expect(error?.code == .unknownSignal)
    #expect(error?.message.contains("cannot tell the signal") == true)
    let empty = importError { _ = try OTLPFileImporter.read(bytes: frame([[]]), path: "in.pb") }
    #expect(empty?.code == .unknownSignal)
    #expect(empty?.message.contains("give --signal") == true)
  }

  @Test("a request with no item takes its file's signal, or the operator's when nothing else tells")
  func emptyRequestsTakeTheFilesSignal() throws {
    let logs: [UInt8] = try sampleLogsRequest().serializedBytes()
    let inLogsFile = try OTLPFileImporter.read(bytes: frame([[], logs, []]), path: "in.pb").records
    #expect(inLogsFile.map(\.signal) == [.logs, .logs, .logs])
    #expect(inLogsFile[0].request.isEmpty)

    let alone = try OTLPFileImporter.read(bytes: frame([[]]), path: "in.pb", emptyRequestSignal: .metrics).records
    #expect(alone.map(\.signal) == [.metrics])
    // The file's own requests decide over the hint: a stream holds one signal.
    let hinted = try OTLPFileImporter.read(bytes: frame([logs, []]), path: "in.pb", emptyRequestSignal: .traces)
    #expect(hinted.records.map(\.signal) == [.logs, .logs])

    let trace: [UInt8] = try sampleTraceRequest().serializedBytes()
    let mixed = importError {
      _ = try OTLPFileImporter.read(bytes: frame([trace, logs, []]), path: "in.pb", emptyRequestSignal: .traces)
    }
    #expect(mixed?.code == .unknownSignal)
    #expect(mixed?.message.contains("mixes signals") == true)
  }

  @Test("a log record is not mistaken for a span or a metric")
  func noCrossTalk() throws {
    let logs: [UInt8] = try sampleLogsRequest().serializedBytes()
    let records = try OTLPFileImporter.read(bytes: frame([logs]), path: "in.pb").records
    #expect(records.map(\.signal) == [.logs])
  }

  @Test("zstd-compressed JSON lines and protobuf streams are decompressed")
  func zstd() throws {
    let json = try OTLPFileImporter.read(
      bytes: try Zstd.compress(bytes(camelSpanLine + "\n")), path: "in.jsonl.zst")
    #expect(json.format == .jsonLines)
    #expect(json.compressed)
    #expect(json.records.map(\.request) == (try importJSON(camelSpanLine)).map(\.request))
    #expect(json.records.first?.source == ImportSource(path: "in.jsonl.zst", location: .line(1)))
    let trace: [UInt8] = try sampleTraceRequest().serializedBytes()
    let proto = try OTLPFileImporter.read(
      bytes: try Zstd.compress(frame([trace, trace])), path: "in.pb.zst")
    #expect(proto.format == .protoStream)
    #expect(proto.compressed)
    #expect(proto.records.count == 2)
    let cut = try Zstd.compress(frame([trace, trace, trace]))
    let truncated = importError {
      _ = try OTLPFileImporter.read(bytes: Array(cut.dropLast(5)), path: "in.zst")
    }
    #expect(truncated?.code == .decompression)
    let packedCut = try Zstd.compress(Array(frame([trace]).dropLast()))
    let inner = importError { _ = try OTLPFileImporter.read(bytes: packedCut, path: "in.zst") }
    #expect(inner?.code == .truncated)
    #expect(inner?.decompressed == true)
    #expect(inner?.description.contains("of the decompressed data") == true)
  }

  @Test("empty and whitespace-only inputs have no records", arguments: ["", " \n\t\r\n"])
  func emptyInput(text: String) throws {
    let error = importError { _ = try OTLPFileImporter.read(bytes: bytes(text), path: "e.jsonl") }
    #expect(error?.code == .noRecords)
    #expect(error?.message.contains("no OTLP records") == true)
    let packed = try Zstd.compress(bytes(text))
    let compressed = importError { _ = try OTLPFileImporter.read(bytes: packed, path: "e.zst") }
    #expect(compressed?.code == .noRecords)
  }

  @Test("reading from a path, and a path that cannot be read")
  func files() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "otlp-import-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("t.jsonl")
    try Data(bytes(camelSpanLine + "\n")).write(to: file)
    let result = try OTLPFileImporter.read(contentsOf: file.path)
    #expect(result.records.first?.source == ImportSource(path: file.path, location: .line(1)))
    let missing = directory.appendingPathComponent("missing.jsonl").path
    let error = importError { _ = try OTLPFileImporter.read(contentsOf: missing) }
    #expect(error?.code == .unreadable)
    #expect(error?.description.hasPrefix(missing) == true)
  }
}
