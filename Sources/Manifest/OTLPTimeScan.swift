public import OTLPWire

/// What a walk over one OTLP export request found (BUNDLE-FORMAT.md §6.3); defined by OTLPWire.
public typealias OTLPTimeSummary = OTLPWire.OTLPTimeSummary

/// The protobuf wire of a request is invalid on the path the time scan walks; defined by OTLPWire.
public typealias OTLPWireError = OTLPWire.OTLPWireError

/// Computes item times straight from the protobuf wire format, without decoding messages.
///
/// The walk follows only the stable OTLP v1 field numbers the format names: request → 1
/// resource_* → 2 scope_* → 2 spans / log_records / metrics; Span 7/8, LogRecord 1/11, Metric
/// 5/7/9/10/11 → 1 data_points → 3; every timestamp fixed64. Other fields are skipped, but must
/// still be well-formed wire data. This is the verifier's rule, so it stays the §6.3 walk
/// (`OTLPWireReader.scanTimes`), not the full schema check capture admission runs.
public enum OTLPTimeScan {
  /// Scans one serialized `Export…ServiceRequest` of `signal`.
  public static func scan(_ request: UnsafeRawBufferPointer, signal: Signal) throws(OTLPWireError)
    -> OTLPTimeSummary
  {
    try OTLPWireReader.scanTimes(request, signal: signal.wireSignal)
  }

  /// Scans one serialized request held in an array.
  public static func scan(_ request: [UInt8], signal: Signal) throws(OTLPWireError) -> OTLPTimeSummary {
    try OTLPWireReader.scanTimes(request, signal: signal.wireSignal)
  }
}

extension Signal {
  /// The same signal as OTLPWire names it (the codes agree: 1 traces, 2 logs, 3 metrics).
  public var wireSignal: WireSignal {
    switch self {
    case .traces: return .traces
    case .logs: return .logs
    case .metrics: return .metrics
    }
  }
}
