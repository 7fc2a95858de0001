import Manifest
import OTLPProto
import SwiftProtobuf

/// OTLP metrics rendered as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
///
/// Mapping (after the OpenTelemetry → Prometheus compatibility rules, simplified):
/// - gauge → `gauge`; monotonic cumulative sum → `counter` (sample `<name>_total`); any other sum → `gauge`;
/// - cumulative histogram → `histogram` (`_bucket` with cumulative `le` counts ending in `+Inf`,
///   `_sum`, `_count`); summary → `summary` (`quantile` samples, `_sum`, `_count`);
/// - delta histograms and exponential histograms have no lossless classic form and are skipped
///   (counted in ``skippedPoints``), as are points flagged "no recorded value" or without a time;
/// - labels: the point's attributes, plus `job` (`service.namespace/service.name`) and `instance`
///   (`service.instance.id`) from the resource when the point does not set them; names are
///   sanitized to `[a-zA-Z_][a-zA-Z0-9_]*` (metric names also allow `:`), values escaped;
/// - timestamps are seconds with up to nine decimals.
///
/// Output is deterministic: families sorted by name, series by their label text, points by
/// time. Each series must be in time order for the backfill; when two points of one series share
/// a timestamp, the one recorded later (higher sequence number) is kept.
public struct OpenMetricsRenderer {
  struct Sample {
    var suffix: String
    var extraLabel: (String, String)?
    var value: String
  }

  struct Point {
    var time: UInt64
    var samples: [Sample]
  }

  struct Family {
    var type: String
    var help: String
    /// Points by rendered label set.
    var series: [String: [Point]] = [:]
  }

  private var families: [String: Family] = [:]
  /// Points that have no OpenMetrics form here (see the type's documentation).
  public private(set) var skippedPoints: UInt64 = 0
  /// Points written.
  public private(set) var renderedPoints: UInt64 = 0

  public init() {}

  /// Adds the metrics of one serialized `ExportMetricsServiceRequest`.
  public mutating func add(request: some Collection<UInt8>) throws(ReplayError) {
    let decoded: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest
    do {
      decoded = try .init(serializedBytes: Array(request))
    } catch {
      throw ReplayError(.requestUnconvertible, "cannot decode the metrics request: \(error)")
    }
    for resourceMetrics in decoded.resourceMetrics {
      let resourceLabels = Self.resourceLabels(resourceMetrics.resource.attributes)
      for scopeMetrics in resourceMetrics.scopeMetrics {
        for metric in scopeMetrics.metrics { add(metric, resourceLabels: resourceLabels) }
      }
    }
  }

  private mutating func add(_ metric: Opentelemetry_Proto_Metrics_V1_Metric, resourceLabels: [(String, String)]) {
    let name = Self.metricName(metric.name)
    switch metric.data {
    case .gauge(let gauge)?:
      for point in gauge.dataPoints {
        addNumber(point, family: name, type: "gauge", suffix: "", metric: metric, resourceLabels: resourceLabels)
      }
    case .sum(let sum)?:
      if sum.isMonotonic && sum.aggregationTemporality == .cumulative {
        let family = name.hasSuffix("_total") ? String(name.dropLast("_total".count)) : name
        for point in sum.dataPoints {
          addNumber(
            point, family: family, type: "counter", suffix: "_total", metric: metric, resourceLabels: resourceLabels)
        }
      } else {
        for point in sum.dataPoints {
          addNumber(point, family: name, type: "gauge", suffix: "", metric: metric, resourceLabels: resourceLabels)
        }
      }
    case .histogram(let histogram)?:
      guard histogram.aggregationTemporality == .cumulative else {
        skippedPoints += UInt64(histogram.dataPoints.count)
        return
      }
      for point in histogram.dataPoints {
        guard Self.hasValue(point.flags, point.timeUnixNano) else {
          skippedPoints += 1
          continue
        }
        var samples: [Sample] = []
        var cumulative: UInt64 = 0
        for (index, bound) in point.explicitBounds.enumerated() {
          cumulative &+= index < point.bucketCounts.count ? point.bucketCounts[index] : 0
          samples.append(Sample(suffix: "_bucket", extraLabel: ("le", Self.number(bound)), value: String(cumulative)))
        }
        samples.append(Sample(suffix: "_bucket", extraLabel: ("le", "+Inf"), value: String(point.count)))
        if point.hasSum { samples.append(Sample(suffix: "_sum", value: Self.number(point.sum))) }
        samples.append(Sample(suffix: "_count", value: String(point.count)))
        insert(
          family: name, type: "histogram", metric: metric, attributes: point.attributes,
          resourceLabels: resourceLabels, point: Point(time: point.timeUnixNano, samples: samples))
      }
    case .summary(let summary)?:
      for point in summary.dataPoints {
        guard Self.hasValue(point.flags, point.timeUnixNano) else {
          skippedPoints += 1
          continue
        }
        var samples = point.quantileValues.map { quantile in
          Sample(
            suffix: "", extraLabel: ("quantile", Self.number(quantile.quantile)), value: Self.number(quantile.value))
        }
        samples.append(Sample(suffix: "_sum", value: Self.number(point.sum)))
        samples.append(Sample(suffix: "_count", value: String(point.count)))
        insert(
          family: name, type: "summary", metric: metric, attributes: point.attributes,
          resourceLabels: resourceLabels, point: Point(time: point.timeUnixNano, samples: samples))
      }
    case .exponentialHistogram(let histogram)?:
      skippedPoints += UInt64(histogram.dataPoints.count)
    case nil:
      break
    }
  }

  private mutating func addNumber(
    _ point: Opentelemetry_Proto_Metrics_V1_NumberDataPoint, family: String, type: String, suffix: String,
    metric: Opentelemetry_Proto_Metrics_V1_Metric, resourceLabels: [(String, String)]
  ) {
    guard Self.hasValue(point.flags, point.timeUnixNano), let value = point.value else {
      skippedPoints += 1
      return
    }
    let text =
      switch value {
      case .asDouble(let double): Self.number(double)
      case .asInt(let int): String(int)
      }
    insert(
      family: family, type: type, metric: metric, attributes: point.attributes, resourceLabels: resourceLabels,
      point: Point(time: point.timeUnixNano, samples: [Sample(suffix: suffix, value: text)]))
  }

  private mutating func insert(
    family name: String, type: String, metric: Opentelemetry_Proto_Metrics_V1_Metric,
    attributes: [Opentelemetry_Proto_Common_V1_KeyValue], resourceLabels: [(String, String)], point: Point
  ) {
    var family = families[name] ?? Family(type: type, help: metric.description_p)
    guard family.type == type else {
      // Two metrics whose names sanitize alike but whose types differ cannot share a family.
      skippedPoints += 1
      return
    }
    let labels = Self.labelText(Self.labels(attributes, resourceLabels: resourceLabels))
    family.series[labels, default: []].append(point)
    families[name] = family
    renderedPoints += 1
  }

  /// The OpenMetrics text, ending with `# EOF`.
  public func render() -> [UInt8] {
    var out = ""
    for name in families.keys.sorted() {
      guard let family = families[name] else { continue }
      out += "# TYPE \(name) \(family.type)\n"
      if !family.help.isEmpty { out += "# HELP \(name) \(Self.escape(family.help, quote: false))\n" }
      for labels in family.series.keys.sorted() {
        guard let points = family.series[labels] else { continue }
        // Stable sort by time; on equal times the later-recorded point wins.
        let ordered = points.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }
        var kept: [Point] = []
        for (_, point) in ordered {
          if let last = kept.last, last.time == point.time { kept.removeLast() }
          kept.append(point)
        }
        for point in kept {
          let timestamp = Self.seconds(point.time)
          for sample in point.samples {
            var sampleLabels = labels
            if let (key, value) = sample.extraLabel {
              let extra = "\(key)=\"\(Self.escape(value, quote: true))\""
              sampleLabels = sampleLabels.isEmpty ? extra : sampleLabels + "," + extra
            }
            let braces = sampleLabels.isEmpty ? "" : "{\(sampleLabels)}"
            out += "\(name)\(sample.suffix)\(braces) \(sample.value) \(timestamp)\n"
          }
        }
      }
    }
    out += "# EOF\n"
    return Array(out.utf8)
  }

  // MARK: - Names, labels, numbers

  static func hasValue(_ flags: UInt32, _ time: UInt64) -> Bool { flags & 1 == 0 && time != 0 }

  /// A metric name in `[a-zA-Z_:][a-zA-Z0-9_:]*`.
  public static func metricName(_ name: String) -> String { sanitize(name, allowColon: true) }

  /// A label name in `[a-zA-Z_][a-zA-Z0-9_]*`.
  public static func labelName(_ name: String) -> String { sanitize(name, allowColon: false) }

  static func sanitize(_ name: String, allowColon: Bool) -> String {
    var out = ""
    for scalar in name.unicodeScalars {
      let ok =
        (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
        || scalar == "_" || (allowColon && scalar == ":")
      out.unicodeScalars.append(ok ? scalar : "_")
    }
    if out.isEmpty { return "_" }
    if let first = out.unicodeScalars.first, first >= "0" && first <= "9" { out = "_" + out }
    return out
  }

  static func resourceLabels(_ attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) -> [(String, String)] {
    var values: [String: String] = [:]
    for attribute in attributes { values[attribute.key] = anyValueText(attribute.value) }
    var labels: [(String, String)] = []
    if let service = values["service.name"] {
      labels.append(("job", values["service.namespace"].map { "\($0)/\(service)" } ?? service))
    }
    if let instance = values["service.instance.id"] { labels.append(("instance", instance)) }
    return labels
  }

  /// Sanitized, sorted labels; attributes whose names sanitize alike are joined with `;` in key order.
  static func labels(_ attributes: [Opentelemetry_Proto_Common_V1_KeyValue], resourceLabels: [(String, String)])
    -> [(String, String)]
  {
    var grouped: [String: [(String, String)]] = [:]
    for attribute in attributes {
      grouped[labelName(attribute.key), default: []].append((attribute.key, anyValueText(attribute.value)))
    }
    var labels: [String: String] = [:]
    for (name, values) in grouped {
      labels[name] = values.sorted { $0.0 < $1.0 }.map(\.1).joined(separator: ";")
    }
    for (name, value) in resourceLabels where labels[name] == nil { labels[name] = value }
    return labels.keys.sorted().compactMap { key in labels[key].map { (key, $0) } }
  }

  static func labelText(_ labels: [(String, String)]) -> String {
    labels.map { "\($0.0)=\"\(escape($0.1, quote: true))\"" }.joined(separator: ",")
  }

  static func anyValueText(_ value: Opentelemetry_Proto_Common_V1_AnyValue) -> String {
    switch value.value {
    case .stringValue(let text)?: return text
    case .boolValue(let flag)?: return flag ? "true" : "false"
    case .intValue(let int)?: return String(int)
    case .doubleValue(let double)?: return number(double)
    case .arrayValue(let array)?: return "[" + array.values.map(anyValueText).joined(separator: ",") + "]"
    case .kvlistValue(let list)?:
      return "{" + list.values.map { "\($0.key):\(anyValueText($0.value))" }.joined(separator: ",") + "}"
    case .bytesValue(let data)?: return Hex.encode(data)
    case .stringValueStrindex(let index)?: return String(index)
    case nil: return ""
    }
  }

  /// Label values escape `\`, `"` and newline; HELP text escapes `\` and newline.
  static func escape(_ text: String, quote: Bool) -> String {
    var out = ""
    for char in text {
      switch char {
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\"" where quote: out += "\\\""
      default: out.append(char)
      }
    }
    return out
  }

  /// A float as OpenMetrics writes it (`NaN`, `+Inf`, `-Inf`, else the shortest round-trip form).
  public static func number(_ value: Double) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
    return "\(value)"
  }

  /// Unix nanoseconds as decimal seconds, exact, without trailing zeros.
  public static func seconds(_ unixNano: UInt64) -> String {
    let whole = unixNano / 1_000_000_000
    let fraction = unixNano % 1_000_000_000
    guard fraction != 0 else { return String(whole) }
    var digits = String(fraction)
    digits = String(repeating: "0", count: 9 - digits.count) + digits
    while digits.hasSuffix("0") { digits.removeLast() }
    return "\(whole).\(digits)"
  }
}
