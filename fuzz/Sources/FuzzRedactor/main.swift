import Foundation
import FuzzSupport
import Ingest
import Manifest
import OTLPProto
import SwiftProtobuf

// Fuzz target: the wire-form redactor (`Redactor.redaction(of:signal:)`) on every request
// admission accepts. The first input byte chooses the signal (bits 0-1); the rest is the
// protobuf body. Bodies admission refuses are skipped: the redactor only ever sees accepted ones.
//
// Oracles besides "no crash, no ASan report, no hang":
// - an accepted request is never refused by the redactor;
// - the output is a valid request of its signal: admission's wire check (exactly what
//   swift-protobuf decodes, plus the verifier's §6.3 walk) accepts it and swift-protobuf decodes
//   it as the signal's `Export…ServiceRequest`;
// - an unchanged request comes back byte for byte;
// - the output holds no unknown field: redacting it again drops none.

/// Every kind of rule: allow (with prefixes), block, hash, the three built-ins and an own mask.
private let policy: RedactionPolicy = {
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-redactor-\(getpid())")
  try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  let key = directory.appendingPathComponent("fuzz.key")
  FileManager.default.createFile(atPath: key.path, contents: Data(repeating: 0x41, count: 32))
  chmod(key.path, 0o600)
  let yaml = """
    id: fuzz
    attributes:
      allow: ["service.*", "http.*", note, message, "k", "user.email"]
      block: [password, "http.request.header.authorization"]
    builtin: [email, card-number, bearer-token]
    mask:
      - name: iban
        pattern: '\\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\\b'
    hash:
      keys: [user.email, "k"]
      key-file: fuzz.key
    """
  let path = directory.appendingPathComponent("policy.yaml").path
  FileManager.default.createFile(atPath: path, contents: Data(yaml.utf8))
  do {
    return try RedactionPolicy(contentsOfFile: path)
  } catch {
    fuzzInvariantFailed("the fuzz policy does not load: \(error)")
  }
}()

private let redactor = Redactor(policy: policy)

private func decodes(_ bytes: [UInt8], as signal: Signal) -> Bool {
  do {
    switch signal {
    case .traces: _ = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: bytes)
    case .logs: _ = try Opentelemetry_Proto_Collector_Logs_V1_ExportLogsServiceRequest(serializedBytes: bytes)
    case .metrics:
      _ = try Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest(serializedBytes: bytes)
    }
    return true
  } catch {
    return false
  }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRedactor(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  guard let selector = bytes.first else { return 0 }
  let signals: [Signal] = [.traces, .logs, .metrics, .traces]
  let signal = signals[Int(selector & 3)]
  let body = Array(bytes.dropFirst())
  guard (try? OTLPRequestDecoder.check(body: body, signal: signal, encoding: .protobuf)) != nil else { return 0 }
  let outcome: RedactionOutcome
  do {
    outcome = try redactor.redaction(of: body, signal: signal)
  } catch {
    fuzzInvariantFailed("an admitted request was refused by the redactor: \(error.message)")
  }
  if !outcome.changed, outcome.request != body { fuzzInvariantFailed("unchanged but other bytes") }
  do {
    _ = try OTLPRequestDecoder.check(body: outcome.request, signal: signal, encoding: .protobuf)
  } catch {
    fuzzInvariantFailed("redacted output is not a valid request: \(error.message)")
  }
  if !decodes(outcome.request, as: signal) { fuzzInvariantFailed("swift-protobuf refuses the redacted output") }
  do {
    let again = try redactor.redaction(of: outcome.request, signal: signal)
    if again.unknownFieldsDropped != 0 { fuzzInvariantFailed("the output still holds unknown fields") }
  } catch {
    fuzzInvariantFailed("redacting the output failed: \(error.message)")
  }
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzRedactor_main`.
@_cdecl("FuzzRedactor_main")
public func fuzzRedactorMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  runFuzzer(argc, argv, fuzzRedactor)
}
