/// The OTLP v1 messages the full check knows, as the generated swift-protobuf code in
/// `Sources/OTLPProto` defines them (opentelemetry-proto with `entity_refs`, `*_strindex` and
/// `event_name`).
///
/// `KeyValue` and `AnyValue` appear twice: `tenantKeyValue`/`tenantAnyValue` are the ones in
/// `Resource.attributes` (`tenantResource`), where the check also collects tenant values; their
/// wire rules are identical.
enum MessageKind: UInt8 {
  case traceRequest, logsRequest, metricsRequest
  case resourceSpans, resourceLogs, resourceMetrics
  case scopeSpans, scopeLogs, scopeMetrics
  case span, logRecord, metric
  case gauge, sum, histogram, exponentialHistogram, summary
  case numberDataPoint, histogramDataPoint, exponentialHistogramDataPoint, summaryDataPoint
  case event, link, status
  case exemplar, buckets, valueAtQuantile
  case instrumentationScope, entityRef
  case keyValue, anyValue, arrayValue, keyValueList
  case tenantResource, tenantKeyValue, tenantAnyValue

  /// Whether BUNDLE-FORMAT.md §6.3's time walk reads this message's fields. There the walk's
  /// own, stricter rules apply on top of swift-protobuf's: a varint's tenth byte must be 0 or 1,
  /// groups nest at most 64 deep, and the path and time fields must have their declared wire type.
  var isTimeWalked: Bool {
    // The cases above are declared so that the walked ones come first.
    rawValue <= MessageKind.summaryDataPoint.rawValue
  }

  var name: String {
    switch self {
    case .traceRequest: return "ExportTraceServiceRequest"
    case .logsRequest: return "ExportLogsServiceRequest"
    case .metricsRequest: return "ExportMetricsServiceRequest"
    case .resourceSpans: return "ResourceSpans"
    case .resourceLogs: return "ResourceLogs"
    case .resourceMetrics: return "ResourceMetrics"
    case .scopeSpans: return "ScopeSpans"
    case .scopeLogs: return "ScopeLogs"
    case .scopeMetrics: return "ScopeMetrics"
    case .span: return "Span"
    case .logRecord: return "LogRecord"
    case .metric: return "Metric"
    case .gauge: return "Gauge"
    case .sum: return "Sum"
    case .histogram: return "Histogram"
    case .exponentialHistogram: return "ExponentialHistogram"
    case .summary: return "Summary"
    case .numberDataPoint: return "NumberDataPoint"
    case .histogramDataPoint: return "HistogramDataPoint"
    case .exponentialHistogramDataPoint: return "ExponentialHistogramDataPoint"
    case .summaryDataPoint: return "SummaryDataPoint"
    case .event: return "Span.Event"
    case .link: return "Span.Link"
    case .status: return "Status"
    case .exemplar: return "Exemplar"
    case .buckets: return "ExponentialHistogramDataPoint.Buckets"
    case .valueAtQuantile: return "SummaryDataPoint.ValueAtQuantile"
    case .tenantResource: return "Resource"
    case .instrumentationScope: return "InstrumentationScope"
    case .entityRef: return "EntityRef"
    case .keyValue, .tenantKeyValue: return "KeyValue"
    case .anyValue, .tenantAnyValue: return "AnyValue"
    case .arrayValue: return "ArrayValue"
    case .keyValueList: return "KeyValueList"
    }
  }
}

/// How swift-protobuf's generated `decodeMessage` treats one field number of one message.
///
/// A known field whose wire type does not match is not an error there: the decoder leaves it
/// unconsumed and keeps it as an unknown field. Only the `timeWalked…` rules, from §6.3, refuse it.
enum FieldRule: Equatable {
  /// Not in the schema: any well-formed wire data.
  case unknown
  /// int32, int64, uint32, uint64, sint32, bool or enum: a varint (its value is not range-checked).
  case varint
  /// fixed64, sfixed64 or double.
  case fixed64
  /// fixed32 (and sfixed32/float, which OTLP does not use).
  case fixed32
  /// A length-delimited field whose bytes must be valid UTF-8.
  case string
  /// A length-delimited field with any bytes.
  case bytes
  /// `repeated fixed64`: one fixed64, or packed, a multiple of 8 bytes (and under 2 GiB).
  case repeatedFixed64
  /// `repeated double`: as `repeatedFixed64`, without the 2 GiB bound (swift-protobuf reads the
  /// length itself there).
  case repeatedDouble
  /// `repeated uint64`: one varint, or packed, varints filling the bytes exactly.
  case repeatedVarint
  /// A length-delimited sub-message.
  case message(MessageKind)
  /// A sub-message on the §6.3 path: any other wire type is refused.
  case timeWalkedMessage(MessageKind)
  /// A §6.3 timestamp: fixed64 or refused; stored in the item's time slot 0 or 1.
  case timeWalkedFixed64(slot: UInt8)
}

extension MessageKind {
  // One switch per message, in field-number order, straight from the generated decodeMessage.
  // swiftlint:disable:next cyclomatic_complexity function_body_length
  @inline(__always)
  func rule(_ field: UInt32) -> FieldRule {
    switch self {
    case .traceRequest: return field == 1 ? .timeWalkedMessage(.resourceSpans) : .unknown
    case .logsRequest: return field == 1 ? .timeWalkedMessage(.resourceLogs) : .unknown
    case .metricsRequest: return field == 1 ? .timeWalkedMessage(.resourceMetrics) : .unknown
    case .resourceSpans: return Self.resourceLevel(field, scope: .scopeSpans)
    case .resourceLogs: return Self.resourceLevel(field, scope: .scopeLogs)
    case .resourceMetrics: return Self.resourceLevel(field, scope: .scopeMetrics)
    case .scopeSpans: return Self.scopeLevel(field, item: .span)
    case .scopeLogs: return Self.scopeLevel(field, item: .logRecord)
    case .scopeMetrics: return Self.scopeLevel(field, item: .metric)
    case .span:
      switch field {
      case 1, 2, 4: return .bytes  // trace_id, span_id, parent_span_id
      case 3, 5: return .string  // trace_state, name
      case 6, 10, 12, 14: return .varint  // kind, dropped_*_count
      case 7: return .timeWalkedFixed64(slot: 0)  // start_time_unix_nano
      case 8: return .timeWalkedFixed64(slot: 1)  // end_time_unix_nano
      case 9: return .message(.keyValue)  // attributes
      case 11: return .message(.event)
      case 13: return .message(.link)
      case 15: return .message(.status)
      case 16: return .fixed32  // flags
      default: return .unknown
      }
    case .event:
      switch field {
      case 1: return .fixed64
      case 2: return .string
      case 3: return .message(.keyValue)
      case 4: return .varint
      default: return .unknown
      }
    case .link:
      switch field {
      case 1, 2: return .bytes
      case 3: return .string
      case 4: return .message(.keyValue)
      case 5: return .varint
      case 6: return .fixed32
      default: return .unknown
      }
    case .status:
      switch field {
      case 2: return .string
      case 3: return .varint
      default: return .unknown
      }
    case .logRecord:
      switch field {
      case 1: return .timeWalkedFixed64(slot: 0)  // time_unix_nano
      case 2, 7: return .varint  // severity_number, dropped_attributes_count
      case 3, 12: return .string  // severity_text, event_name
      case 5: return .message(.anyValue)  // body
      case 6: return .message(.keyValue)
      case 8: return .fixed32  // flags
      case 9, 10: return .bytes  // trace_id, span_id
      case 11: return .timeWalkedFixed64(slot: 1)  // observed_time_unix_nano
      default: return .unknown
      }
    case .metric:
      switch field {
      case 1, 2, 3: return .string  // name, description, unit
      case 5: return .timeWalkedMessage(.gauge)
      case 7: return .timeWalkedMessage(.sum)
      case 9: return .timeWalkedMessage(.histogram)
      case 10: return .timeWalkedMessage(.exponentialHistogram)
      case 11: return .timeWalkedMessage(.summary)
      case 12: return .message(.keyValue)  // metadata
      default: return .unknown
      }
    case .gauge: return field == 1 ? .timeWalkedMessage(.numberDataPoint) : .unknown
    case .sum:
      switch field {
      case 1: return .timeWalkedMessage(.numberDataPoint)
      case 2, 3: return .varint  // aggregation_temporality, is_monotonic
      default: return .unknown
      }
    case .histogram:
      switch field {
      case 1: return .timeWalkedMessage(.histogramDataPoint)
      case 2: return .varint
      default: return .unknown
      }
    case .exponentialHistogram:
      switch field {
      case 1: return .timeWalkedMessage(.exponentialHistogramDataPoint)
      case 2: return .varint
      default: return .unknown
      }
    case .summary: return field == 1 ? .timeWalkedMessage(.summaryDataPoint) : .unknown
    case .numberDataPoint:
      switch field {
      case 2, 4, 6: return .fixed64  // start_time_unix_nano, as_double, as_int
      case 3: return .timeWalkedFixed64(slot: 0)
      case 5: return .message(.exemplar)
      case 7: return .message(.keyValue)
      case 8: return .varint  // flags
      default: return .unknown
      }
    case .histogramDataPoint:
      switch field {
      case 2, 4, 5, 11, 12: return .fixed64  // start, count, sum, min, max
      case 3: return .timeWalkedFixed64(slot: 0)
      case 6: return .repeatedFixed64  // bucket_counts
      case 7: return .repeatedDouble  // explicit_bounds
      case 8: return .message(.exemplar)
      case 9: return .message(.keyValue)
      case 10: return .varint
      default: return .unknown
      }
    case .exponentialHistogramDataPoint:
      switch field {
      case 1: return .message(.keyValue)
      case 2, 4, 5, 7, 12, 13, 14: return .fixed64  // start, count, sum, zero_count, min, max, zero_threshold
      case 3: return .timeWalkedFixed64(slot: 0)
      case 6, 10: return .varint  // scale, flags
      case 8, 9: return .message(.buckets)
      case 11: return .message(.exemplar)
      default: return .unknown
      }
    case .buckets:
      switch field {
      case 1: return .varint  // offset
      case 2: return .repeatedVarint  // bucket_counts
      default: return .unknown
      }
    case .summaryDataPoint:
      switch field {
      case 2, 4, 5: return .fixed64
      case 3: return .timeWalkedFixed64(slot: 0)
      case 6: return .message(.valueAtQuantile)
      case 7: return .message(.keyValue)
      case 8: return .varint
      default: return .unknown
      }
    case .valueAtQuantile: return field == 1 || field == 2 ? .fixed64 : .unknown
    case .exemplar:
      switch field {
      case 2, 3, 6: return .fixed64  // time_unix_nano, as_double, as_int
      case 4, 5: return .bytes  // span_id, trace_id
      case 7: return .message(.keyValue)  // filtered_attributes
      default: return .unknown
      }
    case .tenantResource:
      switch field {
      case 1: return .message(.tenantKeyValue)
      case 2: return .varint
      case 3: return .message(.entityRef)
      default: return .unknown
      }
    case .instrumentationScope:
      switch field {
      case 1, 2: return .string
      case 3: return .message(.keyValue)
      case 4: return .varint
      default: return .unknown
      }
    case .entityRef: return field >= 1 && field <= 4 ? .string : .unknown
    case .keyValue, .tenantKeyValue:
      switch field {
      case 1: return .string  // key
      case 2: return .message(self == .tenantKeyValue ? .tenantAnyValue : .anyValue)
      case 3: return .varint  // key_strindex
      default: return .unknown
      }
    case .anyValue, .tenantAnyValue:
      switch field {
      case 1: return .string
      case 2, 3, 8: return .varint  // bool_value, int_value, string_value_strindex
      case 4: return .fixed64  // double_value
      case 5: return .message(.arrayValue)
      case 6: return .message(.keyValueList)
      case 7: return .bytes
      default: return .unknown
      }
    case .arrayValue: return field == 1 ? .message(.anyValue) : .unknown
    case .keyValueList: return field == 1 ? .message(.keyValue) : .unknown
    }
  }

  @inline(__always)
  private static func resourceLevel(_ field: UInt32, scope: MessageKind) -> FieldRule {
    switch field {
    // Resource attributes are where tenant values come from; a few resources per request.
    case 1: return .message(.tenantResource)
    case 2: return .timeWalkedMessage(scope)
    case 3: return .string  // schema_url
    default: return .unknown
    }
  }

  @inline(__always)
  private static func scopeLevel(_ field: UInt32, item: MessageKind) -> FieldRule {
    switch field {
    case 1: return .message(.instrumentationScope)
    case 2: return .timeWalkedMessage(item)
    case 3: return .string  // schema_url
    default: return .unknown
    }
  }

  /// The field's name in the .proto, for error messages only.
  // swiftlint:disable:next cyclomatic_complexity function_body_length
  func fieldName(_ field: UInt32) -> String {
    let names: [UInt32: String]
    switch self {
    case .traceRequest: names = [1: "resource_spans"]
    case .logsRequest: names = [1: "resource_logs"]
    case .metricsRequest: names = [1: "resource_metrics"]
    case .resourceSpans: names = [1: "resource", 2: "scope_spans", 3: "schema_url"]
    case .resourceLogs: names = [1: "resource", 2: "scope_logs", 3: "schema_url"]
    case .resourceMetrics: names = [1: "resource", 2: "scope_metrics", 3: "schema_url"]
    case .scopeSpans: names = [1: "scope", 2: "spans", 3: "schema_url"]
    case .scopeLogs: names = [1: "scope", 2: "log_records", 3: "schema_url"]
    case .scopeMetrics: names = [1: "scope", 2: "metrics", 3: "schema_url"]
    case .span:
      names = [
        1: "trace_id", 2: "span_id", 3: "trace_state", 4: "parent_span_id", 5: "name", 6: "kind",
        7: "start_time_unix_nano", 8: "end_time_unix_nano", 9: "attributes", 10: "dropped_attributes_count",
        11: "events", 12: "dropped_events_count", 13: "links", 14: "dropped_links_count", 15: "status",
        16: "flags",
      ]
    case .event: names = [1: "time_unix_nano", 2: "name", 3: "attributes", 4: "dropped_attributes_count"]
    case .link:
      names = [
        1: "trace_id", 2: "span_id", 3: "trace_state", 4: "attributes", 5: "dropped_attributes_count",
        6: "flags",
      ]
    case .status: names = [2: "message", 3: "code"]
    case .logRecord:
      names = [
        1: "time_unix_nano", 2: "severity_number", 3: "severity_text", 5: "body", 6: "attributes",
        7: "dropped_attributes_count", 8: "flags", 9: "trace_id", 10: "span_id", 11: "observed_time_unix_nano",
        12: "event_name",
      ]
    case .metric:
      names = [
        1: "name", 2: "description", 3: "unit", 5: "gauge", 7: "sum", 9: "histogram",
        10: "exponential_histogram", 11: "summary", 12: "metadata",
      ]
    case .gauge, .summary: names = [1: "data_points"]
    case .sum: names = [1: "data_points", 2: "aggregation_temporality", 3: "is_monotonic"]
    case .histogram, .exponentialHistogram: names = [1: "data_points", 2: "aggregation_temporality"]
    case .numberDataPoint:
      names = [
        2: "start_time_unix_nano", 3: "time_unix_nano", 4: "as_double", 5: "exemplars", 6: "as_int",
        7: "attributes", 8: "flags",
      ]
    case .histogramDataPoint:
      names = [
        2: "start_time_unix_nano", 3: "time_unix_nano", 4: "count", 5: "sum", 6: "bucket_counts",
        7: "explicit_bounds", 8: "exemplars", 9: "attributes", 10: "flags", 11: "min", 12: "max",
      ]
    case .exponentialHistogramDataPoint:
      names = [
        1: "attributes", 2: "start_time_unix_nano", 3: "time_unix_nano", 4: "count", 5: "sum", 6: "scale",
        7: "zero_count", 8: "positive", 9: "negative", 10: "flags", 11: "exemplars", 12: "min", 13: "max",
        14: "zero_threshold",
      ]
    case .buckets: names = [1: "offset", 2: "bucket_counts"]
    case .summaryDataPoint:
      names = [
        2: "start_time_unix_nano", 3: "time_unix_nano", 4: "count", 5: "sum", 6: "quantile_values",
        7: "attributes", 8: "flags",
      ]
    case .valueAtQuantile: names = [1: "quantile", 2: "value"]
    case .exemplar:
      names = [2: "time_unix_nano", 3: "as_double", 4: "span_id", 5: "trace_id", 6: "as_int", 7: "filtered_attributes"]
    case .tenantResource: names = [1: "attributes", 2: "dropped_attributes_count", 3: "entity_refs"]
    case .instrumentationScope: names = [1: "name", 2: "version", 3: "attributes", 4: "dropped_attributes_count"]
    case .entityRef: names = [1: "schema_url", 2: "type", 3: "id_keys", 4: "description_keys"]
    case .keyValue, .tenantKeyValue: names = [1: "key", 2: "value", 3: "key_strindex"]
    case .anyValue, .tenantAnyValue:
      names = [
        1: "string_value", 2: "bool_value", 3: "int_value", 4: "double_value", 5: "array_value",
        6: "kvlist_value", 7: "bytes_value", 8: "string_value_strindex",
      ]
    case .arrayValue, .keyValueList: names = [1: "values"]
    }
    return names[field] ?? "field \(field)"
  }
}
