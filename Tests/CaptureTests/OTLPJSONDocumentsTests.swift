import Capture
import EvidenceIO
import Foundation
import Manifest
import Testing

@testable import Seal

/// OTLP/JSON laid out as people and the OTLP specification write it: indented documents over
/// several lines, several in a row; the records must be those of the one-line forms.
@Suite("OTLP file import: JSON documents over several lines")
struct OTLPJSONDocumentsTests {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("fixtures/otlp")

  /// The one-line requests of a committed fixture (the Python SDK's file exporter output).
  static func lines(_ name: String) throws -> [String] {
    let text = try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
    return text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
  }

  /// Re-indents one-line JSON token for token (two spaces per level, a line per member and
  /// element), so every number and string stays exactly as written.
  static func pretty(_ line: String, indent: String = "  ") -> String {
    var out = ""
    var depth = 0
    var inString = false
    var escaped = false
    func newline() { out += "\n" + String(repeating: indent, count: depth) }
    for character in line {
      if inString {
        out.append(character)
        if escaped {
          escaped = false
        } else if character == "\\" {
          escaped = true
        } else if character == "\"" {
          inString = false
        }
        continue
      }
      switch character {
      case "\"":
        inString = true
        out.append(character)
      case "{", "[":
        out.append(character)
        depth += 1
        newline()
      case "}", "]":
        depth -= 1
        newline()
        out.append(character)
      case ",":
        out.append(character)
        newline()
      case ":":
        out += ": "
      default:
        out.append(character)
      }
    }
    return out
  }

  static func read(_ text: String, path: String = "in.json") throws(ImportError) -> [ImportedRecord] {
    try OTLPFileImporter.read(bytes: Array(text.utf8), path: path).records
  }

  @Test(
    "an indented document of each signal reads as its one-line form",
    arguments: ["traces.otlp.jsonl", "logs.otlp.jsonl", "metrics.otlp.jsonl"])
  func prettyDocuments(fixture: String) throws {
    for line in try Self.lines(fixture) {
      let oneLine = try Self.read(line)
      let document = Self.pretty(line)
      #expect(document.contains("\n  "))
      let indented = try Self.read(document + "\n")
      #expect(indented.map(\.request) == oneLine.map(\.request))
      #expect(indented.map(\.signal) == oneLine.map(\.signal))
      #expect(indented.map(\.source.location) == [.line(1)])
    }
  }

  @Test("several indented documents in a row: the records of every line, each placed at its first line")
  func severalDocuments() throws {
    let lines = try ["traces.otlp.jsonl", "logs.otlp.jsonl", "metrics.otlp.jsonl"].flatMap(Self.lines)
    let oneLine = try Self.read(lines.joined(separator: "\n"))
    // Separated by nothing, by a blank line, by CRLF, and with tab indentation, as hand-made files are.
    var text = ""
    var expectedLines: [Int] = []
    for (index, line) in lines.enumerated() {
      let separator = ["", "\n\n", "\r\n", " "][index % 4]
      text += separator
      // Counted in bytes: a Swift Character "\r\n" is one grapheme and never equals "\n".
      expectedLines.append(text.utf8.filter { $0 == UInt8(ascii: "\n") }.count + 1)
      text += Self.pretty(line, indent: index % 2 == 0 ? "  " : "\t")
    }
    let records = try Self.read(text)
    #expect(records.map(\.request) == oneLine.map(\.request))
    #expect(records.map(\.signal) == oneLine.map(\.signal))
    #expect(records.map(\.source.location) == expectedLines.map { .line($0) })
    // One-line documents next to indented ones, and two objects on one line.
    let mixed = try Self.read(lines[0] + lines[1] + "\n" + Self.pretty(lines[2]) + "\n" + lines[3])
    #expect(mixed.map(\.request) == Array(oneLine.prefix(4)).map(\.request))
  }

  @Test("the same documents compressed with zstd read the same")
  func compressed() throws {
    let lines = try Self.lines("logs.otlp.jsonl")
    let text = lines.map { Self.pretty($0) }.joined(separator: "\n")
    let packed = try Zstd.compress(Array(text.utf8))
    let result = try OTLPFileImporter.read(bytes: packed, path: "in.json.zst")
    #expect(result.compressed)
    #expect(result.records.map(\.request) == (try Self.read(lines.joined(separator: "\n"))).map(\.request))
  }

  @Test("an error inside an indented document names the file's line and column")
  func errorPosition() {
    let text = """
      {
        "resourceSpans": [
          {
            "scopeSpans": [ }
          }
        ]
      }
      """
    let error = importError { _ = try Self.read(text) }
    #expect(error?.code == .malformedJSON)
    #expect(error?.location == .line(4))
    #expect(error?.column == 23)
    #expect(error?.description.hasPrefix("in.json: line 4, column 23: malformed JSON") == true)
    // The historical refusal of a multi-line document ("line 1, column 2: expected a member
    // name") is gone; a document after a good one is placed by its own lines.
    let second = "{\"resourceSpans\": []}\n{\n  \"resourceSpans\": [],\n  \"x\" 1\n}\n"
    let after = importError { _ = try Self.read(second) }
    #expect(after?.code == .malformedJSON)
    #expect(after?.location == .line(4))
    #expect(after?.column == 7)
  }

  @Test("a bad id deep in an indented document, and trailing garbage after one")
  func otherErrors() {
    let badID = """
      {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "abc"}
      ]}]}]}
      """
    let idError = importError { _ = try Self.read(badID) }
    #expect(idError?.code == .invalidID)
    #expect(idError?.location == .line(2))
    let garbage = importError { _ = try Self.read("{\n\"resourceSpans\": []\n}\nnot json\n") }
    #expect(garbage?.code == .malformedJSON)
    #expect(garbage?.location == .line(4))
    #expect(garbage?.column == 1)
    let unterminated = importError { _ = try Self.read("{\n\"resourceSpans\": [\n") }
    #expect(unterminated?.code == .malformedJSON)
  }
}
