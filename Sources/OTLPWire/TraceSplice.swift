/// Builds a new `ExportTraceServiceRequest` from some of another request's spans, reusing the
/// client's own bytes.
public enum OTLPTraceSplice {
  /// A request holding `spans` (facts from ``OTLPWireReader/forEachSpan(_:_:)`` over `request`).
  ///
  /// Pure byte assembly: each kept span's field is copied as sent; each `ResourceSpans` and
  /// `ScopeSpans` is re-emitted with every field it had except its `scope_spans`/`spans`
  /// (so `resource`, `schema_url` and unknown fields survive), followed by the kept children,
  /// under a new length prefix. Resources come in first-seen order, scopes in first-seen order
  /// within their resource, spans in the given order within their scope. An empty list gives an
  /// empty request.
  public static func request(from request: UnsafeRawBufferPointer, keeping spans: [SpanFacts])
    throws(OTLPWireError) -> [UInt8]
  {
    guard !spans.isEmpty else { return [] }
    guard let base = request.baseAddress else {
      throw OTLPWireError(offset: 0, message: Problem.rangeOutsideRequest.text)
    }
    let input = WireInput(base: base, count: request.count)
    // Grouping by the enclosing fields' start offsets; a few dictionaries per call, not per field.
    var resourceOrder: [Range<Int>] = []
    var scopesByResource: [Int: [Range<Int>]] = [:]
    var spansByScope: [Int: [Range<Int>]] = [:]
    for span in spans {
      for range in [span.span, span.scopeSpans, span.resourceSpans]
      where range.lowerBound < 0 || range.upperBound > request.count {
        throw OTLPWireError(offset: range.lowerBound, message: Problem.rangeOutsideRequest.text)
      }
      let resourceKey = span.resourceSpans.lowerBound
      if scopesByResource[resourceKey] == nil {
        resourceOrder.append(span.resourceSpans)
        scopesByResource[resourceKey] = []
      }
      let scopeKey = span.scopeSpans.lowerBound
      if spansByScope[scopeKey] == nil {
        scopesByResource[resourceKey, default: []].append(span.scopeSpans)
        spansByScope[scopeKey] = []
      }
      spansByScope[scopeKey, default: []].append(span.span)
    }
    var output: [UInt8] = []
    output.reserveCapacity(spans.reduce(0) { $0 + $1.span.count } + 64 * resourceOrder.count)
    do throws(Fault) {
      for resource in resourceOrder {
        var resourceBody: [UInt8] = []
        try input.appendFields(of: resource, except: 2, to: &resourceBody)
        for scope in scopesByResource[resource.lowerBound] ?? [] {
          var scopeBody: [UInt8] = []
          try input.appendFields(of: scope, except: 2, to: &scopeBody)
          for span in spansByScope[scope.lowerBound] ?? [] {
            scopeBody.append(contentsOf: UnsafeRawBufferPointer(rebasing: request[span]))
          }
          appendField(2, scopeBody, to: &resourceBody)
        }
        appendField(1, resourceBody, to: &output)
      }
    } catch {
      throw error.publicError
    }
    return output
  }

  private static func appendField(_ number: UInt8, _ body: [UInt8], to output: inout [UInt8]) {
    output.append(number << 3 | 2)
    var length = UInt64(body.count)
    while length >= 0x80 {
      output.append(UInt8(truncatingIfNeeded: length) | 0x80)
      length >>= 7
    }
    output.append(UInt8(length))
    output.append(contentsOf: body)
  }
}

extension WireInput {
  /// Appends the fields of the length-delimited field `field` (tag and length included in
  /// `field`) other than `skipped`, each as its original bytes.
  func appendFields(of field: Range<Int>, except skipped: UInt32, to output: inout [UInt8]) throws(Fault) {
    var position = field.lowerBound
    _ = try readTag(&position, field.upperBound)
    let body = try readLength(&position, field.upperBound, strict: false, bounded: true)
    try forEachField(body, depth: 2) { (inner) throws(Fault) in
      guard inner.number != skipped else { return }
      output.append(contentsOf: UnsafeRawBufferPointer(start: base + inner.field.lowerBound, count: inner.field.count))
    }
  }
}

/// What it takes to splice items of several requests into one, for callers that merge them
/// themselves (the tail sampler joins the spans of a trace that came in several requests).
public enum OTLPSplice {
  /// Appends the shell of a `ResourceSpans`, `ScopeSpans`, `ResourceLogs` or `ScopeLogs` field
  /// (`container` as the facts give it, tag and length included): every field it holds except
  /// its children (field 2), each as sent, in wire order.
  ///
  /// Equal shells mean the same resource (or scope), schema URL and unknown fields byte for byte,
  /// so children of equal shells may share one container in a new request.
  public static func appendShell(
    of container: Range<Int>, in request: UnsafeRawBufferPointer, to output: inout [UInt8]
  ) throws(OTLPWireError) {
    // The tag is read before any length is known, so an empty range must not reach it.
    guard let base = request.baseAddress, !container.isEmpty, container.lowerBound >= 0,
      container.upperBound <= request.count
    else {
      throw OTLPWireError(offset: max(0, container.lowerBound), message: Problem.rangeOutsideRequest.text)
    }
    let input = WireInput(base: base, count: request.count)
    do throws(Fault) {
      try input.appendFields(of: container, except: 2, to: &output)
    } catch {
      throw error.publicError
    }
  }
}
