import Foundation
public import Settings
package import Yams

/// An `http://` endpoint a webhook posts to, split the way a request needs it.
public struct HookURL: Sendable, Equatable, CustomStringConvertible {
  /// Host name or address, without the brackets of an IPv6 literal.
  public var host: String
  public var port: Int
  /// Path and query as sent in the request line (`/` when the URL has none).
  public var target: String

  /// Parses `http://HOST[:PORT][/PATH][?QUERY]`. `https://` is refused: the service has no TLS
  /// client, and a TLS-terminating proxy in front of the receiver does the job (README).
  public init(parsing text: String) throws(CaptureConfigurationError) {
    let lowered = text.lowercased()
    if lowered.hasPrefix("https://") {
      throw CaptureConfigurationError(
        "\"\(text)\": https is not supported (no TLS client); use http:// to a local TLS-terminating proxy")
    }
    guard lowered.hasPrefix("http://") else {
      throw CaptureConfigurationError("\"\(text)\" is not an http:// URL")
    }
    guard !text.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false })
    else {
      throw CaptureConfigurationError("\"\(text)\" contains whitespace or control characters")
    }
    let rest = text.dropFirst("http://".count)
    let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
    let authority = rest[..<authorityEnd]
    var target = String(rest[authorityEnd...])
    if let hash = target.firstIndex(of: "#") { target = String(target[..<hash]) }
    if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
    guard !authority.contains("@") else {
      throw CaptureConfigurationError(
        "\"\(text)\": credentials in the URL are not supported; send them with headers (Authorization)")
    }
    var host: Substring
    var portText: Substring?
    if authority.hasPrefix("[") {
      guard let close = authority.firstIndex(of: "]") else {
        throw CaptureConfigurationError("\"\(text)\": unterminated IPv6 address")
      }
      host = authority[authority.index(after: authority.startIndex)..<close]
      let after = authority[authority.index(after: close)...]
      if !after.isEmpty {
        guard after.hasPrefix(":") else { throw CaptureConfigurationError("\"\(text)\": junk after the IPv6 address") }
        portText = after.dropFirst()
      }
    } else if let colon = authority.lastIndex(of: ":") {
      host = authority[..<colon]
      portText = authority[authority.index(after: colon)...]
    } else {
      host = authority
    }
    guard !host.isEmpty else { throw CaptureConfigurationError("\"\(text)\" has no host") }
    var port = 80
    if let portText {
      guard let value = Int(portText), (1...65535).contains(value) else {
        throw CaptureConfigurationError("\"\(text)\": port must be a number from 1 to 65535")
      }
      port = value
    }
    self.host = String(host)
    self.port = port
    self.target = target
  }

  /// The `Host` header value.
  public var hostHeader: String {
    let name = host.contains(":") ? "[\(host)]" : host
    return port == 80 ? name : "\(name):\(port)"
  }

  public var description: String { "http://\(hostHeader)\(target)" }
}

/// One webhook: a URL that gets an HTTP POST of the event body.
public struct WebhookConfiguration: Sendable, Equatable {
  public var url: HookURL
  /// The events it gets; every kind by default.
  public var events: Set<NotifyEvent.Kind> = Set(NotifyEvent.Kind.allCases)
  /// Extra request headers (for example `Authorization`), in configuration order.
  public var headers: [(name: String, value: String)] = []
  /// Bound on one attempt: connect, send and read the answer.
  public var timeoutMillis = 5000
  /// Attempts before giving up (the first one included).
  public var maxAttempts = 5
  /// Wait before the second attempt; doubled for each further one, capped at 60 s.
  public var backoffMillis = 1000

  public init(url: HookURL) { self.url = url }

  public static func == (lhs: WebhookConfiguration, rhs: WebhookConfiguration) -> Bool {
    lhs.url == rhs.url && lhs.events == rhs.events && lhs.timeoutMillis == rhs.timeoutMillis
      && lhs.maxAttempts == rhs.maxAttempts && lhs.backoffMillis == rhs.backoffMillis
      && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
  }
}

/// One command hook: a program run with the event body on standard input.
public struct CommandHookConfiguration: Sendable, Equatable {
  /// Program and arguments; the program is looked up in `PATH` when it has no slash. No shell
  /// is involved unless the argv names one.
  public var argv: [String]
  public var events: Set<NotifyEvent.Kind> = Set(NotifyEvent.Kind.allCases)
  /// The command (its whole process group) is killed when it runs longer than this.
  public var timeoutMillis = 30_000

  public init(argv: [String]) { self.argv = argv }
}

/// The `hooks:` section of the capture configuration (also read by `bundle --notify-config`).
public struct HookConfiguration: Sendable, Equatable {
  public var webhooks: [WebhookConfiguration] = []
  public var commands: [CommandHookConfiguration] = []
  /// Events waiting per hook; past it the oldest is dropped (logged and counted).
  public var queueSize = 1000

  public init() {}

  /// Whether any hook is configured.
  public var isEmpty: Bool { webhooks.isEmpty && commands.isEmpty }

  /// Reads the `hooks:` section of a YAML document (a capture configuration file, or a file
  /// holding only that section). Other top-level keys are the capture configuration's business
  /// and are not looked at; an absent section is no hooks. Unknown keys inside it are errors.
  public init(yaml text: String, path: String) throws(CaptureConfigurationError) {
    guard let node = try Self.reader(path).document(text),
      let section = try Self.mapping(node, "the document", path).first(where: { $0.0 == "hooks" })?.1
    else {
      self.init()
      return
    }
    try self.init(node: section, path: path, field: "hooks")
  }

  /// Reads a `hooks:` section already parsed, `field` being its name in error messages.
  package init(node: Node, path: String, field: String) throws(CaptureConfigurationError) {
    if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.string == "null" || scalar.string == "~" {
      return
    }
    for (key, value) in try Self.mapping(node, field, path) {
      let name = "\(field).\(key)"
      switch key {
      case "webhooks":
        for (index, entry) in try Self.sequence(value, name, path).enumerated() {
          webhooks.append(try Self.webhook(entry, "\(name)[\(index)]", path))
        }
      case "commands":
        for (index, entry) in try Self.sequence(value, name, path).enumerated() {
          commands.append(try Self.command(entry, "\(name)[\(index)]", path))
        }
      case "queue-size":
        let text = try Self.string(value, name, path)
        guard let size = Int(text), (1...1_000_000).contains(size) else {
          throw CaptureConfigurationError("\(path): \(name): \"\(text)\" must be a number from 1 to 1000000")
        }
        queueSize = size
      default:
        throw Self.unknown(name, path)
      }
    }
  }

  private static func webhook(_ node: Node, _ field: String, _ path: String) throws(CaptureConfigurationError)
    -> WebhookConfiguration
  {
    let entries = try mapping(node, field, path)
    guard let urlNode = entries.first(where: { $0.0 == "url" })?.1 else {
      throw CaptureConfigurationError("\(path): \(field).url is missing")
    }
    let urlText = try string(urlNode, "\(field).url", path)
    let url: HookURL
    do {
      url = try HookURL(parsing: urlText)
    } catch {
      throw CaptureConfigurationError("\(path): \(field).url: \(error.message)")
    }
    var hook = WebhookConfiguration(url: url)
    for (key, value) in entries {
      let name = "\(field).\(key)"
      switch key {
      case "url": continue
      case "events": hook.events = try events(value, name, path)
      case "headers":
        for (header, headerValue) in try mapping(value, name, path) {
          let text = try string(headerValue, "\(name).\(header)", path)
          try checkHeader(header, text, "\(name).\(header)", path)
          hook.headers.append((header, text))
        }
      case "timeout": hook.timeoutMillis = try milliseconds(value, name, path, range: 1...3_600_000)
      case "max-attempts":
        let text = try string(value, name, path)
        guard let attempts = Int(text), (1...100).contains(attempts) else {
          throw CaptureConfigurationError("\(path): \(name): \"\(text)\" must be a number from 1 to 100")
        }
        hook.maxAttempts = attempts
      case "backoff": hook.backoffMillis = try milliseconds(value, name, path, range: 1...3_600_000)
      default: throw unknown(name, path)
      }
    }
    return hook
  }

  private static func command(_ node: Node, _ field: String, _ path: String) throws(CaptureConfigurationError)
    -> CommandHookConfiguration
  {
    let entries = try mapping(node, field, path)
    guard let argvNode = entries.first(where: { $0.0 == "argv" })?.1 else {
      throw CaptureConfigurationError("\(path): \(field).argv is missing")
    }
    var argv: [String] = []
    for (index, item) in try sequence(argvNode, "\(field).argv", path).enumerated() {
      let text = try string(item, "\(field).argv[\(index)]", path)
      guard !text.utf8.contains(0) else {
        throw CaptureConfigurationError("\(path): \(field).argv[\(index)] contains a NUL byte")
      }
      argv.append(text)
    }
    guard let program = argv.first, !program.isEmpty else {
      throw CaptureConfigurationError("\(path): \(field).argv must name a program")
    }
    var hook = CommandHookConfiguration(argv: argv)
    for (key, value) in entries {
      let name = "\(field).\(key)"
      switch key {
      case "argv": continue
      case "events": hook.events = try events(value, name, path)
      case "timeout": hook.timeoutMillis = try milliseconds(value, name, path, range: 1...86_400_000)
      default: throw unknown(name, path)
      }
    }
    return hook
  }

  private static func events(_ node: Node, _ field: String, _ path: String) throws(CaptureConfigurationError)
    -> Set<NotifyEvent.Kind>
  {
    var kinds = Set<NotifyEvent.Kind>()
    for (index, item) in try sequence(node, field, path).enumerated() {
      let text = try string(item, "\(field)[\(index)]", path)
      guard let kind = NotifyEvent.Kind(rawValue: text) else {
        let known = NotifyEvent.Kind.allCases.map(\.rawValue).joined(separator: ", ")
        throw CaptureConfigurationError("\(path): \(field)[\(index)]: unknown event \"\(text)\" (known: \(known))")
      }
      kinds.insert(kind)
    }
    guard !kinds.isEmpty else {
      throw CaptureConfigurationError("\(path): \(field) is empty; leave it out to get every event")
    }
    return kinds
  }

  /// Header names the client sets itself; letting configuration set them would break framing.
  private static let reservedHeaders: Set<String> = [
    "host", "content-length", "content-type", "connection", "transfer-encoding", "te", "upgrade", "expect",
    "x-stella-event", "x-stella-event-id", "x-stella-delivery-attempt",
  ]

  private static func checkHeader(_ name: String, _ value: String, _ field: String, _ path: String)
    throws(CaptureConfigurationError)
  {
    guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else {
      throw CaptureConfigurationError("\(path): \(field): \"\(name)\" is not a valid header name")
    }
    guard !reservedHeaders.contains(name.lowercased()) else {
      throw CaptureConfigurationError("\(path): \(field): \(name) is set by the hook client and cannot be configured")
    }
    guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
      throw CaptureConfigurationError("\(path): \(field): the value contains a control character (CR, LF, NUL...)")
    }
  }

  /// RFC 9110 token characters (header names).
  private static func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
      UInt8(ascii: "A")...UInt8(ascii: "Z"):
      return true
    default:
      return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
  }

  // MARK: - YAML

  /// The capture configuration's reader and wording; unknown keys point to the hooks example.
  private static func reader(_ path: String) -> ConfigurationYAML<CaptureConfigurationError> {
    ConfigurationYAML(path: path, example: "config/hooks.example.yaml")
  }

  private static func mapping(_ node: Node, _ field: String, _ path: String) throws(CaptureConfigurationError)
    -> [(String, Node)]
  {
    try reader(path).mapping(node, field)
  }

  private static func sequence(_ node: Node, _ field: String, _ path: String) throws(CaptureConfigurationError)
    -> [Node]
  {
    try reader(path).sequence(node, field)
  }

  private static func string(_ node: Node, _ field: String, _ path: String) throws(CaptureConfigurationError) -> String
  {
    try reader(path).string(node, field)
  }

  private static func milliseconds(
    _ node: Node, _ field: String, _ path: String, range: ClosedRange<Int>
  ) throws(CaptureConfigurationError) -> Int {
    let text = try string(node, field, path)
    let value = try reader(path).duration(node, field).milliseconds
    guard range.contains(value) else {
      throw CaptureConfigurationError(
        "\(path): \(field): \(text) is outside \(range.lowerBound)ms...\(range.upperBound / 1000)s")
    }
    return value
  }

  private static func unknown(_ field: String, _ path: String) -> CaptureConfigurationError {
    reader(path).unknown(field)
  }
}
