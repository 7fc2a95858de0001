import Manifest
import Seal

/// Runs the OTLP file importer on fuzz input and checks what it returns.
///
/// Oracle: every record the importer returns is a deterministic protobuf request of its signal,
/// so importing that request again as a one-record protobuf stream must give the same signal
/// and the same bytes. The one tolerated failure is "cannot tell the signal": a request without
/// any span, log record or metric (e.g. JSON `{"resourceSpans":[{}]}`) is valid as all three
/// types, and the protobuf reader refuses to guess.
public enum ImportOracle {
  /// Imports `bytes`; on success checks the round trip of each record.
  public static func run(_ bytes: [UInt8], path: String) {
    let records: [ImportedRecord]
    do {
      records = try OTLPFileImporter.read(bytes: bytes, path: path).records
    } catch {
      // Malformed input is expected; the error must still render (it names file and place).
      _ = error.description
      return
    }
    if records.isEmpty { fuzzInvariantFailed("import succeeded with no records") }
    for record in records {
      let count = record.request.count
      var stream: [UInt8] = [
        UInt8(truncatingIfNeeded: count >> 24), UInt8(truncatingIfNeeded: count >> 16),
        UInt8(truncatingIfNeeded: count >> 8), UInt8(truncatingIfNeeded: count),
      ]
      stream += record.request
      do {
        let again = try OTLPFileImporter.read(bytes: stream, path: "roundtrip").records
        guard again.count == 1, let only = again.first else {
          fuzzInvariantFailed("re-import of one request gave \(again.count) records")
        }
        guard only.signal == record.signal else {
          fuzzInvariantFailed(
            "\(record.source): imported as \(record.signal), its request re-imports as \(only.signal)")
        }
        guard only.request == record.request else {
          fuzzInvariantFailed(
            "\(record.source): re-serialization is not idempotent (\(record.request.count) -> \(only.request.count) bytes)"
          )
        }
      } catch {
        guard error.code == .unknownSignal, error.message.contains("cannot tell the signal") else {
          fuzzInvariantFailed(
            "\(record.source): the importer's own \(record.signal) request does not re-import: \(error)")
        }
      }
    }
  }
}
