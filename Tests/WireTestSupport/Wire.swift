/// Hand-encoded OTLP protobuf, so these tests do not depend on generated code.
public enum Wire {
  public static func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var out: [UInt8] = []
    repeat {
      var byte = UInt8(value & 0x7F)
      value >>= 7
      if value != 0 { byte |= 0x80 }
      out.append(byte)
    } while value != 0
    return out
  }

  public static func field(_ number: UInt64, bytes: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(UInt64(bytes.count)) + bytes
  }

  public static func fixed64(_ number: UInt64, _ value: UInt64) -> [UInt8] {
    var out = varint(number << 3 | 1)
    for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    return out
  }

  /// An ExportTraceServiceRequest with one span per (start, end) pair.
  public static func traces(_ spans: [(UInt64, UInt64)]) -> [UInt8] {
    let spanBytes = spans.flatMap {
      field(2, bytes: field(1, bytes: Array("span".utf8)) + fixed64(7, $0.0) + fixed64(8, $0.1))
    }
    return field(1, bytes: field(1, bytes: []) + field(2, bytes: spanBytes))
  }

  /// An ExportLogsServiceRequest with one log record per (time, observed) pair.
  public static func logs(_ records: [(UInt64, UInt64)]) -> [UInt8] {
    let recordBytes = records.flatMap { field(2, bytes: fixed64(1, $0.0) + fixed64(11, $0.1)) }
    return field(1, bytes: field(2, bytes: recordBytes))
  }

  /// An ExportMetricsServiceRequest with one gauge holding a data point per time.
  public static func gauge(_ times: [UInt64]) -> [UInt8] {
    let points = times.flatMap { field(1, bytes: fixed64(3, $0)) }
    let metric = field(1, bytes: Array("m".utf8)) + field(5, bytes: points)
    return field(1, bytes: field(2, bytes: field(2, bytes: metric)))
  }
}
