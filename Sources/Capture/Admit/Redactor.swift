import Foundation
public import Manifest
import OTLPProto
import SwiftProtobuf

/// Applies a ``RedactionPolicy`` to OTLP export requests, between decoding and the journal, so
/// nothing the policy removes ever reaches disk.
///
/// Where the policy applies: the attributes of resources, instrumentation scopes, spans, span
/// events, span links, log records and metric data points (and exemplars' filtered attributes,
/// metric metadata); log record bodies; span status messages (which SDKs fill with exception
/// text). In each attribute list, in this order:
/// 1. `attributes.allow` (when present) drops every key it does not list; it applies to the
///    attribute lists themselves, not to keys inside `kvlist` values, whose names the policy
///    cannot know in advance;
/// 2. `attributes.block` drops the keys it lists, at every depth (inside `kvlist` values too);
/// 3. a value under a `hash.keys` key (at every depth) becomes the string
///    `hmac-sha256:<hex>`, keyed with the policy's key file;
/// 4. every other string value, including strings nested in arrays and `kvlist`s, goes through
///    the masks (built-ins first, then `mask` entries in document order).
///
/// Dropped attributes are added to the holder's `dropped_attributes_count` where OTLP has one,
/// so a reader of the evidence can see that attributes were removed.
public struct Redactor: Sendable {
  public let policy: RedactionPolicy

  public init(policy: RedactionPolicy) {
    self.policy = policy
  }

  /// The request with the policy applied.
  ///
  /// - Parameters:
  ///   - request: a serialized `Export…ServiceRequest` of `signal`, as admission produced it.
  ///   - signal: which request type `request` is.
  /// - Returns: `request` itself, byte for byte, when the policy changes nothing in it (so
  ///   unredacted evidence stays exactly what the client sent); otherwise the deterministic
  ///   serialization of the rewritten request. It may be longer than `request` (hashes and
  ///   replacement texts can be longer than the values they replace).
  /// - Throws: ``RejectedRequest`` of kind ``RejectedRequest/Kind/malformed`` when `request` does
  ///   not decode as `signal`'s request, ``RejectedRequest/Kind/internalError`` when the rewritten
  ///   request cannot be serialized or libcrypto fails to hash.
  public func redact(_ request: [UInt8], signal: Signal) throws(RejectedRequest) -> [UInt8] {
    if policy.isEmpty || request.isEmpty { return request }
    let pass = RedactionPass(policy: policy)
    switch signal {
    case .traces:
      return try rewrite(request, as: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest.self, pass) {
        (message) throws(RejectedRequest) in
        if let list = try rewrittenElements(message.resourceSpans, pass.resourceSpans) { message.resourceSpans = list }
      }
    case .logs:
      return try rewrite(request, as: Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest.self, pass) {
        (message) throws(RejectedRequest) in
        if let list = try rewrittenElements(message.resourceLogs, pass.resourceLogs) { message.resourceLogs = list }
      }
    case .metrics:
      return try rewrite(request, as: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest.self, pass) {
        (message) throws(RejectedRequest) in
        if let list = try rewrittenElements(message.resourceMetrics, pass.resourceMetrics) {
          message.resourceMetrics = list
        }
      }
    }
  }

  /// Decodes `bytes` as `M`, lets `body` rewrite it, and serializes it only if something changed.
  private func rewrite<M: SwiftProtobuf.Message>(
    _ bytes: [UInt8], as type: M.Type, _ pass: RedactionPass, _ body: (inout M) throws(RejectedRequest) -> Void
  ) throws(RejectedRequest) -> [UInt8] {
    var message: M
    do {
      message = try M(serializedBytes: bytes)
    } catch {
      throw RejectedRequest(.malformed, "redaction: not a valid \(M.protoMessageName): \(error)")
    }
    try body(&message)
    guard pass.changed else { return bytes }
    do {
      return try message.serializedBytes(options: OTLPSerialization.deterministic)
    } catch {
      throw RejectedRequest(.internalError, "redaction: cannot serialize the redacted request: \(error)")
    }
  }
}

/// `elements` with each one `rewrite` returns a new value for replaced, or `nil` when it returned
/// none. Nothing is copied until the first change.
private func rewrittenElements<Element>(
  _ elements: [Element], _ rewrite: (Element) throws(RejectedRequest) -> Element?
) throws(RejectedRequest) -> [Element]? {
  var result: [Element]?
  for index in elements.indices {
    guard let element = try rewrite(elements[index]) else { continue }
    if result == nil { result = elements }
    result?[index] = element
  }
  return result
}

/// One walk over a decoded request. Every step returns the rewritten message, or `nil` when the
/// policy leaves it as it is; a message is written back only when it changed, so an untouched
/// request is never copied (decoded messages are copy-on-write) and never gains fields it did
/// not have (an absent `resource` stays absent). ``changed`` says whether re-serializing is
/// needed at all.
private final class RedactionPass {
  typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
  typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue

  let policy: RedactionPolicy
  private(set) var changed = false

  init(policy: RedactionPolicy) {
    self.policy = policy
  }

  // MARK: Traces

  func resourceSpans(_ item: Opentelemetry_Proto_Trace_V1_ResourceSpans) throws(RejectedRequest)
    -> Opentelemetry_Proto_Trace_V1_ResourceSpans?
  {
    var item = item
    var touched = false
    if let resource = try resource(item.resource) {
      item.resource = resource
      touched = true
    }
    if let list = try rewrittenElements(item.scopeSpans, scopeSpans) {
      item.scopeSpans = list
      touched = true
    }
    return touched ? item : nil
  }

  func scopeSpans(_ item: Opentelemetry_Proto_Trace_V1_ScopeSpans) throws(RejectedRequest)
    -> Opentelemetry_Proto_Trace_V1_ScopeSpans?
  {
    var item = item
    var touched = false
    if let scope = try scope(item.scope) {
      item.scope = scope
      touched = true
    }
    if let list = try rewrittenElements(item.spans, span) {
      item.spans = list
      touched = true
    }
    return touched ? item : nil
  }

  func span(_ span: Opentelemetry_Proto_Trace_V1_Span) throws(RejectedRequest) -> Opentelemetry_Proto_Trace_V1_Span? {
    var span = span
    var touched = false
    if let (attributes, dropped) = try attributes(span.attributes, topLevel: true) {
      span.attributes = attributes
      span.droppedAttributesCount = Self.adding(dropped, to: span.droppedAttributesCount)
      touched = true
    }
    let events = try rewrittenElements(span.events) {
      (event) throws(RejectedRequest) -> Opentelemetry_Proto_Trace_V1_Span.Event? in
      guard let (attributes, dropped) = try self.attributes(event.attributes, topLevel: true) else { return nil }
      var event = event
      event.attributes = attributes
      event.droppedAttributesCount = Self.adding(dropped, to: event.droppedAttributesCount)
      return event
    }
    if let events {
      span.events = events
      touched = true
    }
    let links = try rewrittenElements(span.links) {
      (link) throws(RejectedRequest) -> Opentelemetry_Proto_Trace_V1_Span.Link? in
      guard let (attributes, dropped) = try self.attributes(link.attributes, topLevel: true) else { return nil }
      var link = link
      link.attributes = attributes
      link.droppedAttributesCount = Self.adding(dropped, to: link.droppedAttributesCount)
      return link
    }
    if let links {
      span.links = links
      touched = true
    }
    if span.hasStatus, let message = masked(span.status.message) {
      span.status.message = message
      touched = true
    }
    return touched ? span : nil
  }

  // MARK: Logs

  func resourceLogs(_ item: Opentelemetry_Proto_Logs_V1_ResourceLogs) throws(RejectedRequest)
    -> Opentelemetry_Proto_Logs_V1_ResourceLogs?
  {
    var item = item
    var touched = false
    if let resource = try resource(item.resource) {
      item.resource = resource
      touched = true
    }
    if let list = try rewrittenElements(item.scopeLogs, scopeLogs) {
      item.scopeLogs = list
      touched = true
    }
    return touched ? item : nil
  }

  func scopeLogs(_ item: Opentelemetry_Proto_Logs_V1_ScopeLogs) throws(RejectedRequest)
    -> Opentelemetry_Proto_Logs_V1_ScopeLogs?
  {
    var item = item
    var touched = false
    if let scope = try scope(item.scope) {
      item.scope = scope
      touched = true
    }
    if let list = try rewrittenElements(item.logRecords, logRecord) {
      item.logRecords = list
      touched = true
    }
    return touched ? item : nil
  }

  func logRecord(_ record: Opentelemetry_Proto_Logs_V1_LogRecord) throws(RejectedRequest)
    -> Opentelemetry_Proto_Logs_V1_LogRecord?
  {
    var record = record
    var touched = false
    if let (attributes, dropped) = try attributes(record.attributes, topLevel: true) {
      record.attributes = attributes
      record.droppedAttributesCount = Self.adding(dropped, to: record.droppedAttributesCount)
      touched = true
    }
    if record.hasBody, let body = try rewrittenValue(record.body) {
      record.body = body
      touched = true
    }
    return touched ? record : nil
  }

  // MARK: Metrics

  func resourceMetrics(_ item: Opentelemetry_Proto_Metrics_V1_ResourceMetrics) throws(RejectedRequest)
    -> Opentelemetry_Proto_Metrics_V1_ResourceMetrics?
  {
    var item = item
    var touched = false
    if let resource = try resource(item.resource) {
      item.resource = resource
      touched = true
    }
    if let list = try rewrittenElements(item.scopeMetrics, scopeMetrics) {
      item.scopeMetrics = list
      touched = true
    }
    return touched ? item : nil
  }

  func scopeMetrics(_ item: Opentelemetry_Proto_Metrics_V1_ScopeMetrics) throws(RejectedRequest)
    -> Opentelemetry_Proto_Metrics_V1_ScopeMetrics?
  {
    var item = item
    var touched = false
    if let scope = try scope(item.scope) {
      item.scope = scope
      touched = true
    }
    if let list = try rewrittenElements(item.metrics, metric) {
      item.metrics = list
      touched = true
    }
    return touched ? item : nil
  }

  func metric(_ metric: Opentelemetry_Proto_Metrics_V1_Metric) throws(RejectedRequest)
    -> Opentelemetry_Proto_Metrics_V1_Metric?
  {
    var metric = metric
    var touched = false
    if let (attributes, _) = try attributes(metric.metadata, topLevel: true) {
      metric.metadata = attributes
      touched = true
    }
    switch metric.data {
    case .gauge(var gauge):
      if let points = try rewrittenElements(gauge.dataPoints, numberPoint) {
        gauge.dataPoints = points
        metric.data = .gauge(gauge)
        touched = true
      }
    case .sum(var sum):
      if let points = try rewrittenElements(sum.dataPoints, numberPoint) {
        sum.dataPoints = points
        metric.data = .sum(sum)
        touched = true
      }
    case .histogram(var histogram):
      let points = try rewrittenElements(histogram.dataPoints) {
        (point) throws(RejectedRequest) -> Opentelemetry_Proto_Metrics_V1_HistogramDataPoint? in
        var point = point
        let attributes = try self.attributes(point.attributes, topLevel: true)
        let exemplars = try rewrittenElements(point.exemplars, self.exemplar)
        if let (attributes, _) = attributes { point.attributes = attributes }
        if let exemplars { point.exemplars = exemplars }
        return attributes != nil || exemplars != nil ? point : nil
      }
      if let points {
        histogram.dataPoints = points
        metric.data = .histogram(histogram)
        touched = true
      }
    case .exponentialHistogram(var histogram):
      let points = try rewrittenElements(histogram.dataPoints) {
        (point) throws(RejectedRequest) -> Opentelemetry_Proto_Metrics_V1_ExponentialHistogramDataPoint? in
        var point = point
        let attributes = try self.attributes(point.attributes, topLevel: true)
        let exemplars = try rewrittenElements(point.exemplars, self.exemplar)
        if let (attributes, _) = attributes { point.attributes = attributes }
        if let exemplars { point.exemplars = exemplars }
        return attributes != nil || exemplars != nil ? point : nil
      }
      if let points {
        histogram.dataPoints = points
        metric.data = .exponentialHistogram(histogram)
        touched = true
      }
    case .summary(var summary):
      let points = try rewrittenElements(summary.dataPoints) {
        (point) throws(RejectedRequest) -> Opentelemetry_Proto_Metrics_V1_SummaryDataPoint? in
        guard let (attributes, _) = try self.attributes(point.attributes, topLevel: true) else { return nil }
        var point = point
        point.attributes = attributes
        return point
      }
      if let points {
        summary.dataPoints = points
        metric.data = .summary(summary)
        touched = true
      }
    case nil:
      break
    }
    return touched ? metric : nil
  }

  func numberPoint(_ point: Opentelemetry_Proto_Metrics_V1_NumberDataPoint) throws(RejectedRequest)
    -> Opentelemetry_Proto_Metrics_V1_NumberDataPoint?
  {
    var point = point
    let attributes = try self.attributes(point.attributes, topLevel: true)
    let exemplars = try rewrittenElements(point.exemplars, exemplar)
    if let (attributes, _) = attributes { point.attributes = attributes }
    if let exemplars { point.exemplars = exemplars }
    return attributes != nil || exemplars != nil ? point : nil
  }

  func exemplar(_ exemplar: Opentelemetry_Proto_Metrics_V1_Exemplar) throws(RejectedRequest)
    -> Opentelemetry_Proto_Metrics_V1_Exemplar?
  {
    guard let (attributes, _) = try attributes(exemplar.filteredAttributes, topLevel: true) else { return nil }
    var exemplar = exemplar
    exemplar.filteredAttributes = attributes
    return exemplar
  }

  // MARK: Resources and scopes

  func resource(_ resource: Opentelemetry_Proto_Resource_V1_Resource) throws(RejectedRequest)
    -> Opentelemetry_Proto_Resource_V1_Resource?
  {
    guard let (attributes, dropped) = try attributes(resource.attributes, topLevel: true) else { return nil }
    var resource = resource
    resource.attributes = attributes
    resource.droppedAttributesCount = Self.adding(dropped, to: resource.droppedAttributesCount)
    return resource
  }

  func scope(_ scope: Opentelemetry_Proto_Common_V1_InstrumentationScope) throws(RejectedRequest)
    -> Opentelemetry_Proto_Common_V1_InstrumentationScope?
  {
    guard let (attributes, dropped) = try attributes(scope.attributes, topLevel: true) else { return nil }
    var scope = scope
    scope.attributes = attributes
    scope.droppedAttributesCount = Self.adding(dropped, to: scope.droppedAttributesCount)
    return scope
  }

  // MARK: Attribute lists and values

  /// The rewritten list and how many attributes it dropped, or `nil` when nothing changed.
  ///
  /// `topLevel` is `true` for the attribute lists of OTLP messages and `false` for `kvlist`
  /// values; only the former are filtered by `attributes.allow`.
  private func attributes(
    _ list: [KeyValue], topLevel: Bool
  ) throws(RejectedRequest) -> (attributes: [KeyValue], dropped: UInt32)? {
    var result: [KeyValue]?
    var dropped: UInt32 = 0
    for (index, attribute) in list.enumerated() {
      let keep =
        !policy.block.matches(attribute.key) && (!topLevel || policy.allow.map { $0.matches(attribute.key) } ?? true)
      var replacement: KeyValue?
      if keep, attribute.hasValue {
        if policy.hashKeys.matches(attribute.key) {
          replacement = attribute
          replacement?.value = try hashed(attribute.value)
        } else if let value = try rewrittenValue(attribute.value) {
          replacement = attribute
          replacement?.value = value
        }
      }
      if !keep || replacement != nil, result == nil {
        // First change: the untouched attributes before it are kept as they are.
        result = Array(list[..<index])
      }
      if !keep {
        dropped = dropped == .max ? dropped : dropped + 1
      } else if result != nil {
        result?.append(replacement ?? attribute)
      }
    }
    guard let result else { return nil }
    changed = true
    return (result, dropped)
  }

  /// The rewritten value, or `nil` when the masks and nested keys leave it unchanged.
  private func rewrittenValue(_ value: AnyValue) throws(RejectedRequest) -> AnyValue? {
    switch value.value {
    case .stringValue(let text):
      guard let masked = masked(text) else { return nil }
      changed = true
      var result = value
      result.stringValue = masked
      return result
    case .arrayValue(let array):
      var values: [AnyValue]?
      for (index, element) in array.values.enumerated() {
        let rewritten = try rewrittenValue(element)
        if rewritten != nil, values == nil { values = Array(array.values[..<index]) }
        if values != nil { values?.append(rewritten ?? element) }
      }
      guard let values else { return nil }
      var result = value
      result.arrayValue.values = values
      return result
    case .kvlistValue(let list):
      guard let (attributes, _) = try attributes(list.values, topLevel: false) else { return nil }
      var result = value
      result.kvlistValue.values = attributes
      return result
    case .boolValue, .intValue, .doubleValue, .bytesValue, .stringValueStrindex, nil:
      // Not text: nothing for a mask to find. Hash or block their keys to remove them.
      return nil
    }
  }

  /// `text` through every mask, or `nil` when no mask matched.
  private func masked(_ text: String) -> String? {
    var current: String?
    for mask in policy.masks {
      if let next = mask.apply(to: current ?? text) { current = next }
    }
    if current != nil { changed = true }
    return current
  }

  /// `hmac-sha256:<hex>` of the value's bytes: a string's UTF-8, a bytes value as is, numbers and
  /// booleans as their text, arrays and kvlists as their deterministic protobuf encoding.
  private func hashed(_ value: AnyValue) throws(RejectedRequest) -> AnyValue {
    let bytes: [UInt8]
    switch value.value {
    case .stringValue(let text): bytes = Array(text.utf8)
    case .bytesValue(let data): bytes = [UInt8](data)
    case .intValue(let number): bytes = Array(String(number).utf8)
    case .doubleValue(let number): bytes = Array("\(number)".utf8)
    case .boolValue(let flag): bytes = Array((flag ? "true" : "false").utf8)
    case .stringValueStrindex(let index): bytes = Array(String(index).utf8)
    case .arrayValue, .kvlistValue, nil:
      do {
        bytes = try value.serializedBytes(options: OTLPSerialization.deterministic)
      } catch {
        throw RejectedRequest(.internalError, "redaction: cannot encode a value to hash it: \(error)")
      }
    }
    guard let code = HMACSHA256.hex(of: bytes, key: policy.hashKey) else {
      throw RejectedRequest(.internalError, "redaction: libcrypto failed to compute HMAC-SHA256")
    }
    changed = true
    var result = AnyValue()
    result.stringValue = "hmac-sha256:" + code
    return result
  }

  private static func adding(_ dropped: UInt32, to count: UInt32) -> UInt32 {
    let (sum, overflow) = count.addingReportingOverflow(dropped)
    return overflow ? .max : sum
  }
}
