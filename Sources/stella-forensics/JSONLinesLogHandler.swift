import ArgumentParser
import Foundation
import Logging
import Synchronization

/// How `capture` writes its logs on standard error (`--log-format`).
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
  /// swift-log's stream format, for people.
  case text
  /// One JSON object per line, for log shippers.
  case json
}

/// A swift-log handler writing one JSON object per line to standard error:
/// `{"label":…,"level":…,"message":…,"metadata":{…},"source":…,"timestamp":"2026-01-02T03:04:05.678Z"}`.
/// Keys are sorted so lines are stable to compare; metadata values keep their shape (strings,
/// arrays, objects).
struct JSONLinesLogHandler: LogHandler {
  let label: String
  var logLevel: Logger.Level = .info
  var metadata: Logger.Metadata = [:]
  var metadataProvider: Logger.MetadataProvider?

  /// One line per `write(2)`, and no two lines interleaved, whichever thread logs.
  private static let output = Mutex(())

  init(label: String) {
    self.label = label
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    var merged = metadata
    if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
    if let extra = event.metadata { merged.merge(extra) { _, new in new } }
    let object: [String: Any] = [
      "timestamp": Self.timestamp(),
      "level": event.level.rawValue,
      "label": label,
      "message": "\(event.message)",
      "metadata": merged.mapValues(Self.jsonValue),
      "source": event.source,
    ]
    var line: Data
    do {
      line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    } catch {
      // Only strings, arrays and objects go in, so this cannot happen; say so rather than drop it.
      line = Data(#"{"level":"error","message":"unencodable log line"}"#.utf8)
    }
    line.append(0x0A)
    Self.output.withLock { _ in FileHandle.standardError.write(line) }
  }

  private static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
    switch value {
    case .string(let text): text
    case .stringConvertible(let convertible): "\(convertible)"
    case .array(let items): items.map(jsonValue)
    case .dictionary(let entries): entries.mapValues(jsonValue)
    }
  }

  private static func timestamp() -> String {
    Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
  }
}
