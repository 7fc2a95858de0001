/// A parsed JSON value that keeps what canonical-form checks need: object members in input
/// order and each number as its original text (so no precision is lost before it is judged).
public enum JSONValue: Sendable, Equatable {
  case null
  case bool(Bool)
  /// The number exactly as written in the input.
  case number(String)
  case string(String)
  case array([JSONValue])
  /// Members in input order; the parser guarantees keys are unique.
  case object([(key: String, value: JSONValue)])

  /// The string, if this is one.
  public var stringValue: String? {
    if case .string(let text) = self { return text }
    return nil
  }

  public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
    switch (lhs, rhs) {
    case (.null, .null): return true
    case (.bool(let a), .bool(let b)): return a == b
    case (.number(let a), .number(let b)): return a == b
    case (.string(let a), .string(let b)): return a == b
    case (.array(let a), .array(let b)): return a == b
    case (.object(let a), .object(let b)):
      return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    default: return false
    }
  }

  /// A number value for an integer.
  public static func integer(_ value: Int) -> JSONValue { .number(String(value)) }

  /// The member named `key` of an object, or `nil`.
  public subscript(key: String) -> JSONValue? {
    guard case .object(let members) = self else { return nil }
    return members.first { $0.key == key }?.value
  }
}

/// Why JSON could not be parsed or serialized canonically.
public struct JSONError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The kind of problem.
  public enum Kind: Sendable, Equatable {
    /// Not UTF-8, not JSON, or nested too deeply.
    case malformed
    /// An object has the same key twice.
    case duplicateKey
    /// A number outside the format's subset: not an integer, or magnitude above 2^53 - 1.
    case unsupportedNumber
  }

  /// The kind of problem.
  public var kind: Kind
  /// The byte offset in the input where it was found (0 for serialization problems).
  public var offset: Int
  /// What was wrong.
  public var message: String

  public var description: String { "\(message) at byte \(offset)" }
}

/// RFC 8785 (JCS) serialization and a strict JSON parser, restricted as BUNDLE-FORMAT.md §3 says.
public enum CanonicalJSON {
  /// The largest integer the format writes as a JSON number: 2^53 - 1.
  public static let maxSafeInteger: UInt64 = (1 << 53) - 1

  /// Parses `bytes` as one JSON value (UTF-8, no BOM), rejecting duplicate keys.
  public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(JSONError) -> JSONValue {
    var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
    return try parser.parseDocument()
  }

  /// The JCS bytes of `value`. Fails for numbers outside the format's integer subset.
  public static func serialize(_ value: JSONValue) throws(JSONError) -> [UInt8] {
    var out: [UInt8] = []
    try write(value, into: &out)
    return out
  }

  private static func write(_ value: JSONValue, into out: inout [UInt8]) throws(JSONError) {
    switch value {
    case .null: out.append(contentsOf: "null".utf8)
    case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
    case .number(let text): out.append(contentsOf: try canonicalInteger(text).utf8)
    case .string(let text): writeString(text, into: &out)
    case .array(let items):
      out.append(UInt8(ascii: "["))
      for (index, item) in items.enumerated() {
        if index > 0 { out.append(UInt8(ascii: ",")) }
        try write(item, into: &out)
      }
      out.append(UInt8(ascii: "]"))
    case .object(let members):
      out.append(UInt8(ascii: "{"))
      // JCS orders keys by their UTF-16 code units, not by Unicode scalars or UTF-8.
      let sorted = members.sorted { $0.key.utf16.lexicographicallyPrecedes($1.key.utf16) }
      for (index, member) in sorted.enumerated() {
        if index > 0 { out.append(UInt8(ascii: ",")) }
        writeString(member.key, into: &out)
        out.append(UInt8(ascii: ":"))
        try write(member.value, into: &out)
      }
      out.append(UInt8(ascii: "}"))
    }
  }

  /// The ECMAScript form of an integer-valued number token within ±(2^53 - 1).
  private static func canonicalInteger(_ token: String) throws(JSONError) -> String {
    var digits = Substring(token)
    let negative = digits.first == "-"
    if negative { digits = digits.dropFirst() }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
      let magnitude = UInt64(digits), magnitude <= maxSafeInteger
    else {
      throw JSONError(
        kind: .unsupportedNumber, offset: 0,
        message: "number \(token) is not an integer in [-(2^53-1), 2^53-1]")
    }
    return magnitude == 0 ? "0" : (negative ? "-" : "") + String(magnitude)
  }

  private static let hexDigits = Array("0123456789abcdef".utf8)

  private static func writeString(_ text: String, into out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
      case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
      case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
      case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
      case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
      case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
      case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
      case 0x00..<0x20:
        out.append(contentsOf: Array("\\u00".utf8))
        out.append(hexDigits[Int(byte >> 4)])
        out.append(hexDigits[Int(byte & 0x0F)])
      default: out.append(byte)
      }
    }
    out.append(UInt8(ascii: "\""))
  }
}

/// A recursive-descent parser over UTF-8 bytes.
private struct JSONParser {
  let bytes: [UInt8]
  let maxDepth: Int
  var position = 0
  var depth = 0

  init(bytes: [UInt8], maxDepth: Int) {
    self.bytes = bytes
    self.maxDepth = maxDepth
  }

  mutating func parseDocument() throws(JSONError) -> JSONValue {
    skipWhitespace()
    let value = try parseValue()
    skipWhitespace()
    if position != bytes.count { throw malformed("trailing data after the JSON value") }
    return value
  }

  func malformed(_ message: String) -> JSONError {
    JSONError(kind: .malformed, offset: position, message: message)
  }

  mutating func skipWhitespace() {
    while position < bytes.count,
      bytes[position] == 0x20 || bytes[position] == 0x0A || bytes[position] == 0x0D
        || bytes[position] == 0x09
    {
      position += 1
    }
  }

  mutating func parseValue() throws(JSONError) -> JSONValue {
    guard position < bytes.count else { throw malformed("unexpected end of input") }
    switch bytes[position] {
    case UInt8(ascii: "{"): return try parseObject()
    case UInt8(ascii: "["): return try parseArray()
    case UInt8(ascii: "\""): return .string(try parseString())
    case UInt8(ascii: "t"):
      try expectLiteral("true")
      return .bool(true)
    case UInt8(ascii: "f"):
      try expectLiteral("false")
      return .bool(false)
    case UInt8(ascii: "n"):
      try expectLiteral("null")
      return .null
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
    default: throw malformed("unexpected character")
    }
  }

  mutating func expectLiteral(_ literal: String) throws(JSONError) {
    let utf8 = Array(literal.utf8)
    guard bytes.count - position >= utf8.count,
      bytes[position..<position + utf8.count].elementsEqual(utf8)
    else { throw malformed("invalid literal") }
    position += utf8.count
  }

  mutating func enter() throws(JSONError) {
    depth += 1
    if depth > maxDepth { throw malformed("nested deeper than \(maxDepth) levels") }
  }

  mutating func parseObject() throws(JSONError) -> JSONValue {
    try enter()
    defer { depth -= 1 }
    position += 1
    var members: [(key: String, value: JSONValue)] = []
    // Keys compare by their UTF-8 bytes: Swift's String equality would merge canonically
    // equivalent keys that JSON treats as different.
    var seen: Set<[UInt8]> = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
      position += 1
      return .object(members)
    }
    while true {
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
        throw malformed("expected an object key")
      }
      let keyOffset = position
      let key = try parseString()
      if !seen.insert(Array(key.utf8)).inserted {
        throw JSONError(kind: .duplicateKey, offset: keyOffset, message: "duplicate key \"\(key)\"")
      }
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
        throw malformed("expected ':' after an object key")
      }
      position += 1
      skipWhitespace()
      let value = try parseValue()
      members.append((key, value))
      skipWhitespace()
      guard position < bytes.count else { throw malformed("unterminated object") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
        continue
      }
      if bytes[position] == UInt8(ascii: "}") {
        position += 1
        return .object(members)
      }
      throw malformed("expected ',' or '}' in an object")
    }
  }

  mutating func parseArray() throws(JSONError) -> JSONValue {
    try enter()
    defer { depth -= 1 }
    position += 1
    var items: [JSONValue] = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
      position += 1
      return .array(items)
    }
    while true {
      skipWhitespace()
      items.append(try parseValue())
      skipWhitespace()
      guard position < bytes.count else { throw malformed("unterminated array") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
        continue
      }
      if bytes[position] == UInt8(ascii: "]") {
        position += 1
        return .array(items)
      }
      throw malformed("expected ',' or ']' in an array")
    }
  }

  mutating func parseNumber() throws(JSONError) -> String {
    let start = position
    if bytes[position] == UInt8(ascii: "-") { position += 1 }
    guard position < bytes.count, isDigit(bytes[position]) else { throw malformed("invalid number") }
    if bytes[position] == UInt8(ascii: "0") {
      position += 1
    } else {
      while position < bytes.count, isDigit(bytes[position]) { position += 1 }
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
      position += 1
      guard position < bytes.count, isDigit(bytes[position]) else { throw malformed("invalid number") }
      while position < bytes.count, isDigit(bytes[position]) { position += 1 }
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
      position += 1
      if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
        position += 1
      }
      guard position < bytes.count, isDigit(bytes[position]) else { throw malformed("invalid number") }
      while position < bytes.count, isDigit(bytes[position]) { position += 1 }
    }
    return String(decoding: bytes[start..<position], as: UTF8.self)
  }

  func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

  mutating func parseString() throws(JSONError) -> String {
    position += 1
    var scalars = String.UnicodeScalarView()
    var runStart = position
    func flushRun(_ end: Int, _ parser: JSONParser, into scalars: inout String.UnicodeScalarView) throws(JSONError) {
      guard runStart < end else { return }
      guard let run = String(validating: parser.bytes[runStart..<end], as: UTF8.self) else {
        throw JSONError(kind: .malformed, offset: runStart, message: "invalid UTF-8 in a string")
      }
      scalars.append(contentsOf: run.unicodeScalars)
    }
    while true {
      guard position < bytes.count else { throw malformed("unterminated string") }
      let byte = bytes[position]
      if byte == UInt8(ascii: "\"") {
        try flushRun(position, self, into: &scalars)
        position += 1
        return String(scalars)
      }
      if byte < 0x20 { throw malformed("unescaped control character in a string") }
      if byte != UInt8(ascii: "\\") {
        position += 1
        continue
      }
      try flushRun(position, self, into: &scalars)
      position += 1
      guard position < bytes.count else { throw malformed("unterminated escape") }
      let escape = bytes[position]
      position += 1
      switch escape {
      case UInt8(ascii: "\""): scalars.append("\"")
      case UInt8(ascii: "\\"): scalars.append("\\")
      case UInt8(ascii: "/"): scalars.append("/")
      case UInt8(ascii: "b"): scalars.append("\u{08}")
      case UInt8(ascii: "f"): scalars.append("\u{0C}")
      case UInt8(ascii: "n"): scalars.append("\n")
      case UInt8(ascii: "r"): scalars.append("\r")
      case UInt8(ascii: "t"): scalars.append("\t")
      case UInt8(ascii: "u"):
        let unit = try parseHex4()
        if (0xD800..<0xDC00).contains(unit) {
          guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
            bytes[position + 1] == UInt8(ascii: "u")
          else { throw malformed("unpaired surrogate escape") }
          position += 2
          let low = try parseHex4()
          guard (0xDC00..<0xE000).contains(low),
            let scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
          else { throw malformed("unpaired surrogate escape") }
          scalars.append(scalar)
        } else {
          guard let scalar = Unicode.Scalar(unit) else { throw malformed("unpaired surrogate escape") }
          scalars.append(scalar)
        }
      default: throw malformed("invalid escape")
      }
      runStart = position
    }
  }

  mutating func parseHex4() throws(JSONError) -> UInt32 {
    guard bytes.count - position >= 4 else { throw malformed("truncated \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let c = bytes[position]
      let digit: UInt32
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
      default: throw malformed("invalid \\u escape")
      }
      value = value << 4 | digit
      position += 1
    }
    return value
  }
}
