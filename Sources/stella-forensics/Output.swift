import Audit
import Capture
import Foundation
import Journal
import Manifest
import Verify

/// Rendering of command output: canonical (sorted, compact) JSON, and text for terminals.
enum Output {
  /// `text` safe to print on a terminal: control characters (C0, DEL, C1), Unicode format
  /// characters (bidirectional overrides...) and backslashes are written as `\u{…}` / `\\`, so
  /// nothing a caller typed can move the cursor, recolour or reorder what follows.
  static func escaped(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
      switch scalar.value {
      case 0x5C: out += "\\\\"
      case 0..<0x20, 0x7F...0x9F: out += "\\u{\(String(scalar.value, radix: 16))}"
      default:
        if scalar.properties.generalCategory == .format {
          out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out
  }

  static func printJSON(_ value: JSONValue) throws {
    do {
      let bytes = try CanonicalJSON.serialize(value)
      FileHandle.standardOutput.write(Data(bytes + [0x0A]))
    } catch {
      throw CLIFailure.runtime("cannot render JSON output: \(error)")
    }
  }

  static func inspectJSON(_ inspected: InspectedBundle, streams: [StreamSummary]) -> JSONValue {
    let manifest = inspected.manifest
    let manifestJSON = manifest.jsonValue
    return .object([
      ("formatVersion", .integer(BundleManifest.formatVersion)),
      ("manifestSha256", .string(inspected.manifestSHA256)),
      ("signaturesVerified", .bool(false)),
      ("claimedSignerKeyids", .array(inspected.claimedSignerKeyIDs.map { .string($0) })),
      ("incident", manifestJSON["incident"] ?? .null),
      ("capture", manifestJSON["capture"] ?? .null),
      ("redactionPolicy", manifestJSON["redactionPolicy"] ?? .null),
      ("tool", manifestJSON["tool"] ?? .null),
      ("blobCount", .integer(manifest.blobs.count)),
      (
        "streams",
        .array(
          streams.map { summary in
            .object([
              ("node", .string(summary.stream.node)), ("signal", .string(summary.stream.signal.rawValue)),
              ("tenant", .string(summary.stream.tenant)), ("blobs", .integer(summary.blobs)),
              ("records", .number(String(summary.records))),
              ("firstSeq", .string(String(summary.firstSeq))), ("lastSeq", .string(String(summary.lastSeq))),
              ("firstTimeUnixNano", .string(String(summary.firstTime))),
              ("lastTimeUnixNano", .string(String(summary.lastTime))),
              ("compressedBytes", .number(String(summary.compressedBytes))),
              ("uncompressedBytes", .number(String(summary.uncompressedBytes))),
            ])
          })
      ),
      ("custodyTimeline", .array(inspected.custodyTimeline.map(custodyJSON))),
    ])
  }

  /// One audit record of the custody timeline (`inspect --json`; README, "The audit stream").
  static func custodyJSON(_ event: CustodyEvent) -> JSONValue {
    var members: [(String, JSONValue)] = [("node", .string(event.node)), ("seq", .string(String(event.seq)))]
    switch event.record {
    case .failure(let error):
      members.append(("error", .string(error.message)))
    case .success(let record):
      func optional(_ text: String?) -> JSONValue { text.map { .string($0) } ?? .null }
      members += [
        ("timeUnixNano", .string(String(record.timeUnixNano))), ("action", .string(record.action)),
        ("request", optional(record.request)), ("principal", optional(record.principal)),
        ("certificateIdentity", optional(record.certificateIdentity)), ("peer", .string(record.peer)),
        ("parameters", .string(record.parameters)), ("result", .string(record.result.rawValue)),
        ("status", .integer(record.status)), ("reason", optional(record.reason)), ("note", optional(record.note)),
        ("incidentId", optional(record.incidentID)), ("prevSha256", .string(record.previousSHA256)),
      ]
    }
    return .object(members)
  }

  /// One line of the custody timeline (`inspect`).
  static func custodyLine(_ event: CustodyEvent) -> String {
    switch event.record {
    case .failure(let error):
      return "  node=\(event.node) seq \(event.seq): not an audit record (\(error.message))"
    case .success(let record):
      var line = "  \(RFC3339Time.format(record.timeUnixNano)) \(record.summary)"
      if let incident = record.incidentID { line += " [incident \(incident)]" }
      if let note = record.note { line += " (note: \(note))" }
      return line + " node=\(event.node) seq \(event.seq)"
    }
  }

  static func inspectText(_ inspected: InspectedBundle, streams: [StreamSummary], bundle: String) -> String {
    let manifest = inspected.manifest
    var lines: [String] = []
    lines.append("bundle        \(bundle)")
    lines.append(
      "manifest      sha256 \(inspected.manifestSHA256) (structure and digests checked; signatures NOT verified)")
    lines.append("incident      \(manifest.incident.id)")
    lines.append("reason        \(manifest.incident.reason)")
    lines.append(
      "declared by   \(manifest.incident.declaredBy) at \(RFC3339Time.format(manifest.incident.declaredAtUnixNano))")
    lines.append(
      "capture       \(RFC3339Time.format(manifest.capture.startUnixNano)) .. \(RFC3339Time.format(manifest.capture.endUnixNano)) on node(s) \(manifest.capture.nodes.joined(separator: ", "))"
    )
    lines.append("redaction     \(manifest.redactionPolicy.id) (sha256 \(manifest.redactionPolicy.sha256))")
    lines.append("tool          \(manifest.tool.name) \(manifest.tool.version)")
    lines.append("signers       \(inspected.claimedSignerKeyIDs.joined(separator: "\n              "))")
    lines.append("streams       \(streams.count), blobs \(manifest.blobs.count)")
    for summary in streams {
      lines.append(
        "  \(summary.stream.signal.rawValue) tenant=\(summary.stream.tenant) node=\(summary.stream.node): \(summary.records) record(s) in \(summary.blobs) blob(s), seq \(summary.firstSeq)..\(summary.lastSeq), time \(RFC3339Time.format(summary.firstTime)) .. \(RFC3339Time.format(summary.lastTime))"
      )
    }
    if !inspected.custodyTimeline.isEmpty {
      lines.append("custody       \(inspected.custodyTimeline.count) audit record(s) (chain checked by verify --deep)")
      lines += inspected.custodyTimeline.map(custodyLine)
    }
    return lines.joined(separator: "\n")
  }
}
