import Foundation
import OTLPProto
import SwiftProtobuf

/// Requests shaped like an OpenTelemetry SDK's exports, built with the generated messages.
enum SDKRequests {
  typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
  typealias Span = Opentelemetry_Proto_Trace_V1_Span

  static func attribute(_ key: String, _ value: String) -> KeyValue {
    KeyValue.with {
      $0.key = key
      $0.value.stringValue = value
    }
  }

  static func attribute(_ key: String, int value: Int64) -> KeyValue {
    KeyValue.with {
      $0.key = key
      $0.value.intValue = value
    }
  }

  static func resource(service: String, tenant: String? = nil) -> Opentelemetry_Proto_Resource_V1_Resource {
    .with {
      $0.attributes = [
        attribute("service.name", service), attribute("service.version", "1.4.2"),
        attribute("telemetry.sdk.language", "python"), attribute("telemetry.sdk.name", "opentelemetry"),
        attribute("telemetry.sdk.version", "1.45.2"), attribute("host.name", "shop-7d9f8c-x2k4q"),
      ]
      if let tenant { $0.attributes.append(attribute("tenant.id", tenant)) }
    }
  }

  /// Deterministic pseudo-random bytes, so runs compare.
  struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return state
    }
    mutating func bytes(_ count: Int) -> Data {
      Data((0..<count).map { _ in UInt8(truncatingIfNeeded: next() >> 33) })
    }
  }

  static func traces(resources: Int = 2, scopesPerResource: Int = 2, spansPerScope: Int = 8, seed: UInt64 = 1)
    -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
  {
    var random = Generator(state: seed)
    return .with { request in
      request.resourceSpans = (0..<resources).map { resourceIndex in
        .with { resourceSpans in
          resourceSpans.resource = resource(service: "shop-\(resourceIndex)", tenant: "tenant-\(resourceIndex % 2)")
          resourceSpans.schemaURL = "https://opentelemetry.io/schemas/1.21.0"
          resourceSpans.scopeSpans = (0..<scopesPerResource).map { scopeIndex in
            .with { scopeSpans in
              scopeSpans.scope.name = "opentelemetry.instrumentation.flask"
              scopeSpans.scope.version = "0.\(scopeIndex).1"
              scopeSpans.spans = (0..<spansPerScope).map { spanIndex in
                span(&random, index: spanIndex)
              }
            }
          }
        }
      }
    }
  }

  static func span(_ random: inout Generator, index: Int) -> Span {
    .with {
      $0.traceID = random.bytes(16)
      $0.spanID = random.bytes(8)
      if index % 4 != 0 { $0.parentSpanID = random.bytes(8) }
      $0.name = index % 3 == 0 ? "GET /api/orders/{id}" : "SELECT orders"
      $0.kind = index % 3 == 0 ? .server : .client
      $0.startTimeUnixNano = 1_718_000_000_000_000_000 + random.next() % 1_000_000_000
      $0.endTimeUnixNano = $0.startTimeUnixNano + random.next() % 50_000_000
      $0.attributes = [
        attribute("http.method", "GET"), attribute("http.route", "/api/orders/{id}"),
        attribute("http.status_code", int: index % 5 == 0 ? 500 : 200), attribute("net.peer.name", "db.internal"),
        attribute("db.statement", "SELECT * FROM orders WHERE id = ?"), attribute("thread.name", "worker-3"),
      ]
      if index % 5 == 0 {
        $0.events = [
          .with {
            $0.timeUnixNano = 1_718_000_000_000_500_000
            $0.name = "exception"
            $0.attributes = [
              attribute("exception.type", "TimeoutError"), attribute("exception.message", "upstream timed out"),
            ]
          }
        ]
        $0.status.code = .error
        $0.status.message = "upstream timed out"
      } else if index % 2 == 0 {
        $0.status.code = .ok
      }
      $0.flags = 0x301
    }
  }

  static func logs(records: Int = 32, seed: UInt64 = 2)
    -> Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest
  {
    var random = Generator(state: seed)
    return .with { request in
      request.resourceLogs = [
        .with { resourceLogs in
          resourceLogs.resource = resource(service: "shop", tenant: "acme")
          resourceLogs.scopeLogs = [
            .with { scopeLogs in
              scopeLogs.scope.name = "shop.checkout"
              scopeLogs.logRecords = (0..<records).map { index in
                .with {
                  if index % 3 != 0 { $0.timeUnixNano = 1_718_000_000_000_000_000 + UInt64(index) }
                  $0.observedTimeUnixNano = 1_718_000_000_100_000_000 + UInt64(index)
                  $0.severityNumber = index % 7 == 0 ? .error : .info
                  $0.severityText = index % 7 == 0 ? "ERROR" : "INFO"
                  $0.body.stringValue = "checkout started for order-\(1000 + index)"
                  $0.attributes = [
                    attribute("order.id", "order-\(1000 + index)"), attribute("code.function", "checkout"),
                  ]
                  if index % 2 == 0 {
                    $0.traceID = random.bytes(16)
                    $0.spanID = random.bytes(8)
                  }
                }
              }
            }
          ]
        }
      ]
    }
  }

  static func metrics(seed: UInt64 = 3) -> Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest {
    var random = Generator(state: seed)
    return .with { request in
      request.resourceMetrics = [
        .with { resourceMetrics in
          resourceMetrics.resource = resource(service: "shop")
          resourceMetrics.scopeMetrics = [
            .with { scopeMetrics in
              scopeMetrics.scope.name = "shop.meter"
              scopeMetrics.metrics = [
                .with {
                  $0.name = "orders"
                  $0.unit = "1"
                  $0.sum.aggregationTemporality = .cumulative
                  $0.sum.isMonotonic = true
                  $0.sum.dataPoints = (0..<4).map { index in
                    .with {
                      $0.startTimeUnixNano = 1_718_000_000_000_000_000
                      $0.timeUnixNano = 1_718_000_001_000_000_000 + UInt64(index)
                      $0.asInt = Int64(index * 10)
                      $0.attributes = [attribute("shop.region", "eu-\(index)")]
                    }
                  }
                },
                .with {
                  $0.name = "latency"
                  $0.unit = "ms"
                  $0.histogram.aggregationTemporality = .delta
                  $0.histogram.dataPoints = (0..<3).map { index in
                    .with {
                      $0.timeUnixNano = 1_718_000_002_000_000_000 + UInt64(index)
                      $0.count = 12
                      $0.sum = 3.5
                      $0.bucketCounts = [1, 2, 3, 6]
                      $0.explicitBounds = [1, 5, 10]
                      $0.exemplars = [
                        .with {
                          $0.timeUnixNano = 5
                          $0.asDouble = 4.5
                          $0.traceID = random.bytes(16)
                          $0.spanID = random.bytes(8)
                        }
                      ]
                    }
                  }
                },
                .with {
                  $0.name = "size"
                  $0.exponentialHistogram.dataPoints = [
                    .with {
                      $0.timeUnixNano = 1_718_000_003_000_000_000
                      $0.scale = -2
                      $0.positive.offset = -3
                      $0.positive.bucketCounts = [1, 300, 70_000]
                      $0.zeroCount = 1
                    }
                  ]
                },
                .with {
                  $0.name = "temperature"
                  $0.gauge.dataPoints = [
                    .with {
                      $0.timeUnixNano = 7
                      $0.asDouble = 21.5
                    }
                  ]
                },
                .with {
                  $0.name = "rpc"
                  $0.summary.dataPoints = [
                    .with {
                      $0.timeUnixNano = 9
                      $0.quantileValues = [
                        .with {
                          $0.quantile = 0.5
                          $0.value = 3
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
  }

  static func bytes(_ message: some SwiftProtobuf.Message) -> [UInt8] {
    (try? message.serializedBytes()) ?? []
  }
}
