import EvidenceIO
import Foundation
public import Manifest
import Settings
import Yams

/// A redaction policy document that cannot be used, naming the file and the key that is wrong.
public struct RedactionPolicyError: Error, Sendable, CustomStringConvertible {
  /// The policy file, as the caller named it.
  public var path: String
  /// The key path inside the document (`mask[1].pattern`, `hash.key-file`), or `nil` when the
  /// document as a whole is the problem (not readable, not YAML).
  public var key: String?
  /// What is wrong with it.
  public var message: String

  public init(path: String, key: String?, message: String) {
    self.path = path
    self.key = key
    self.message = message
  }

  public var description: String {
    if let key { return "\(path): \(key): \(message)" }
    return "\(path): \(message)"
  }
}

/// What must be removed, masked or hashed in OTLP requests before they are journaled, loaded from a
/// YAML document (see `config/redaction.example.yaml` for every key).
///
/// The policy is parsed and its regular expressions compiled once, at load; applying it is the
/// ``Redactor``'s job. Its ``reference`` (the document's `id` and the SHA-256 of its exact bytes)
/// goes into the manifest of every bundle made of data it was applied to, so an auditor can tell
/// which rules the evidence went through. The hash key file is deliberately not part of that
/// digest: the manifest must not help anyone test guesses against the hashed values.
public struct RedactionPolicy: Sendable {
  /// The document's `id` and the lowercase hex SHA-256 of its exact bytes.
  public let reference: RedactionPolicyReference

  /// Keys that survive when the document has `attributes.allow`; `nil` keeps every key.
  let allow: KeyMatcher?
  /// Keys dropped wherever they occur (`attributes.block`).
  let block: KeyMatcher
  /// Keys whose values are replaced by their keyed hash (`hash.keys`).
  let hashKeys: KeyMatcher
  /// The HMAC key read from `hash.key-file`; empty when nothing is hashed.
  let hashKey: [UInt8]
  /// Masks applied to every string value, built-ins first, in document order.
  let masks: [MaskRule]

  /// Whether the policy has no rule at all; the redactor then returns requests untouched without
  /// decoding them.
  public var isEmpty: Bool { allow == nil && block.isEmpty && hashKeys.isEmpty && masks.isEmpty }

  /// The built-in mask names a document can enable under `builtin:`.
  public static let builtinNames = BuiltinMask.allCases.map(\.rawValue)

  /// The largest hash key file read; a policy's key is a secret of a few dozen bytes.
  static let maxKeyFileBytes = 4096
  /// HMAC keys shorter than this are refused: a short key makes the hashes guessable.
  static let minKeyBytes = 16

  /// Reads and parses the policy file at `path`.
  public init(contentsOfFile path: String) throws(RedactionPolicyError) {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw RedactionPolicyError(path: path, key: nil, message: "cannot read the redaction policy file")
    }
    try self.init(yaml: [UInt8](data), path: path)
  }

  /// Parses a policy document.
  ///
  /// - Parameters:
  ///   - yaml: the exact bytes of the document; their SHA-256 becomes ``reference``'s digest.
  ///   - path: where the document came from: named in errors, and the directory a relative
  ///     `hash.key-file` is resolved against.
  /// - Throws: ``RedactionPolicyError`` naming `path` and the offending key: unknown or missing
  ///   keys, wrong types, an invalid `id`, a regular expression that does not compile or matches
  ///   the empty string, an unknown built-in, a duplicate mask name, an unreadable or short key
  ///   file.
  public init(yaml: [UInt8], path: String) throws(RedactionPolicyError) {
    guard let text = String(validating: yaml, as: UTF8.self) else {
      throw RedactionPolicyError(path: path, key: nil, message: "not UTF-8 text")
    }
    let document = Document(path: path)
    guard let node = try document.yaml.document(text) else {
      throw RedactionPolicyError(path: path, key: "id", message: "required key is missing (the document is empty)")
    }
    let root = try document.yaml.mapping(node, Document.root)

    var id: String?
    var allow: KeyMatcher?
    var block = KeyMatcher()
    var hashKeys = KeyMatcher()
    var hashKey: [UInt8] = []
    var builtins: [MaskRule] = []
    var custom: [MaskRule] = []
    for (key, value) in root {
      switch key {
      case "id":
        id = try document.policyID(value)
      case "attributes":
        for (name, entry) in try document.yaml.mapping(value, key) {
          switch name {
          case "allow": allow = try document.keyMatcher(entry, "attributes.allow")
          case "block": block = try document.keyMatcher(entry, "attributes.block")
          default: throw document.unknown("attributes.\(name)")
          }
        }
      case "builtin":
        builtins = try document.builtins(value)
      case "mask":
        custom = try document.masks(value)
      case "hash":
        (hashKeys, hashKey) = try document.hash(value)
      default:
        throw document.unknown(key)
      }
    }
    guard let id else { throw document.error("id", "required key is missing") }
    var names = Set(builtins.map(\.name))
    for (index, mask) in custom.enumerated() where !names.insert(mask.name).inserted {
      throw document.error("mask[\(index)].name", "\"\(mask.name)\" is used by another mask or built-in")
    }
    self.reference = RedactionPolicyReference(id: id, sha256: SHA256Digest.hex(of: yaml))
    self.allow = allow
    self.block = block
    self.hashKeys = hashKeys
    self.hashKey = hashKey
    self.masks = builtins + custom
  }
}

// MARK: - Parsing

/// Reads the parts of one policy document, making every error name the file and the key.
private struct Document {
  let path: String
  /// The shared configuration reader, in the policy's own wording.
  let yaml: ConfigurationYAML<RedactionPolicyError>

  /// The key the reader is given for the document itself: its errors name no key.
  static let root = ""

  init(path: String) {
    self.path = path
    yaml = ConfigurationYAML(path: path) { key, problem in
      let key: String? = key == Self.root || key == "the document" ? nil : key
      let message =
        switch problem {
        case .invalidYAML(let description): "not valid YAML: \(description)"
        case .notMapping: key == nil ? "the document must be a mapping" : "must be a mapping"
        case .nonStringKey: "has a key that is not a string"
        case .notScalar: "must be a string"
        case .notList: "must be a list"
        case .notDuration(let text): "\"\(text)\" is not a duration"
        case .notSize(let text): "\"\(text)\" is not a size"
        case .unknownKey: "unknown key (see config/redaction.example.yaml)"
        }
      return RedactionPolicyError(path: path, key: key, message: message)
    }
  }

  func error(_ key: String?, _ message: String) -> RedactionPolicyError {
    RedactionPolicyError(path: path, key: key, message: message)
  }

  func unknown(_ key: String) -> RedactionPolicyError { yaml.unknown(key) }

  func mapping(_ node: Node, _ key: String) throws(RedactionPolicyError) -> [(String, Node)] {
    try yaml.mapping(node, key)
  }

  func sequence(_ node: Node, _ key: String) throws(RedactionPolicyError) -> [Node] {
    try yaml.sequence(node, key)
  }

  /// A non-null scalar's text. YAML's `~`/`null` is refused rather than read as the text "null".
  func string(_ node: Node, _ key: String) throws(RedactionPolicyError) -> String {
    let text = try yaml.string(node, key)
    if node.scalar?.style == .plain, node.null != nil { throw error(key, "must be a string, not null") }
    return text
  }

  func policyID(_ node: Node) throws(RedactionPolicyError) -> String {
    let id = try string(node, "id")
    // The manifest schema bounds redactionPolicy.id to 1..256 bytes; control characters would
    // make the id ambiguous when printed by `inspect`.
    guard (1...256).contains(id.utf8.count) else {
      throw error("id", "must be 1 to 256 bytes of UTF-8, got \(id.utf8.count)")
    }
    if id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
      throw error("id", "must not contain control characters")
    }
    return id
  }

  func keyMatcher(_ node: Node, _ key: String) throws(RedactionPolicyError) -> KeyMatcher {
    var matcher = KeyMatcher()
    for (index, entry) in try sequence(node, key).enumerated() {
      let field = "\(key)[\(index)]"
      let pattern = try string(entry, field)
      guard !pattern.isEmpty else { throw error(field, "an attribute key must not be empty") }
      let stem = pattern.hasSuffix("*") ? String(pattern.dropLast()) : pattern
      guard !stem.contains("*") else {
        throw error(field, "\"\(pattern)\": `*` is allowed only as the last character (a prefix match)")
      }
      if pattern.hasSuffix("*") { matcher.add(prefix: stem) } else { matcher.add(exact: stem) }
    }
    return matcher
  }

  func builtins(_ node: Node) throws(RedactionPolicyError) -> [MaskRule] {
    var rules: [MaskRule] = []
    for (index, entry) in try sequence(node, "builtin").enumerated() {
      let field = "builtin[\(index)]"
      let name = try string(entry, field)
      guard let builtin = BuiltinMask(rawValue: name) else {
        throw error(
          field, "unknown built-in \"\(name)\" (one of \(RedactionPolicy.builtinNames.joined(separator: ", ")))")
      }
      guard !rules.contains(where: { $0.name == name }) else { throw error(field, "\"\(name)\" is listed twice") }
      do {
        rules.append(try builtin.rule())
      } catch {
        // The built-in patterns are constants that compile; this only reports a broken build.
        throw self.error(field, "the built-in pattern does not compile: \(error)")
      }
    }
    return rules
  }

  func masks(_ node: Node) throws(RedactionPolicyError) -> [MaskRule] {
    var rules: [MaskRule] = []
    for (index, entry) in try sequence(node, "mask").enumerated() {
      let field = "mask[\(index)]"
      var name: String?
      var pattern: String?
      var replacement: String?
      for (key, value) in try mapping(entry, field) {
        switch key {
        case "name": name = try string(value, "\(field).name")
        case "pattern": pattern = try string(value, "\(field).pattern")
        case "replacement": replacement = try string(value, "\(field).replacement")
        default: throw unknown("\(field).\(key)")
        }
      }
      guard let name else { throw error("\(field).name", "required key is missing") }
      guard MaskRule.isValidName(name) else {
        throw error("\(field).name", "\"\(name)\" must be 1 to 64 of the characters A-Z a-z 0-9 . _ -")
      }
      guard let pattern else { throw error("\(field).pattern", "required key is missing") }
      let regex: NSRegularExpression
      do {
        regex = try NSRegularExpression(pattern: pattern)
      } catch {
        throw self.error("\(field).pattern", "not a valid regular expression (ICU syntax): \(pattern)")
      }
      // A pattern that matches the empty string would insert its replacement between every two
      // characters of every value; that is always a mistake in the document.
      if regex.firstMatch(in: "", range: NSRange(location: 0, length: 0)) != nil {
        throw error("\(field).pattern", "matches the empty string; it must match at least one character")
      }
      rules.append(
        MaskRule(
          name: name, regex: regex, replacement: replacement ?? "[REDACTED:\(name)]",
          prefilter: PatternPrefix.prefilter(for: pattern)))
    }
    return rules
  }

  func hash(_ node: Node) throws(RedactionPolicyError) -> (KeyMatcher, [UInt8]) {
    var keys: KeyMatcher?
    var keyFile: String?
    for (key, value) in try mapping(node, "hash") {
      switch key {
      case "keys": keys = try keyMatcher(value, "hash.keys")
      case "key-file": keyFile = try string(value, "hash.key-file")
      default: throw unknown("hash.\(key)")
      }
    }
    guard let keys else { throw error("hash.keys", "required key is missing") }
    guard let keyFile, !keyFile.isEmpty else { throw error("hash.key-file", "required key is missing") }
    let resolved =
      keyFile.hasPrefix("/")
      ? keyFile
      : URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(keyFile).path
    // A secret: whoever reads it can confirm guesses of hashed values (a user name, an address).
    let data: [UInt8]
    do {
      data = try EvidenceFiles.readPrivateFile(resolved, maxBytes: RedactionPolicy.maxKeyFileBytes)
    } catch let failure {
      let what = failure.kind == .insecure ? "the key file" : "cannot read the key file"
      throw error("hash.key-file", "\(what) \(failure.description)")
    }
    guard data.count >= RedactionPolicy.minKeyBytes, data.count <= RedactionPolicy.maxKeyFileBytes else {
      throw error(
        "hash.key-file",
        "the key file \(resolved) holds \(data.count) bytes; it must hold \(RedactionPolicy.minKeyBytes) to "
          + "\(RedactionPolicy.maxKeyFileBytes) (e.g. `head -c 32 /dev/urandom > KEYFILE`)")
    }
    return (keys, data)
  }
}

// MARK: - Rules

/// Attribute keys listed in a policy: exact keys, and prefixes written with a trailing `*`.
struct KeyMatcher: Sendable {
  private(set) var exact: Set<String> = []
  private(set) var prefixes: [String] = []
  /// The same keys and prefixes as UTF-8, for matching keys straight from the wire.
  private var exactBytes: [[UInt8]] = []
  private var prefixBytes: [[UInt8]] = []
  /// Whether every key and prefix is ASCII. Then an ASCII key matches exactly when its bytes do
  /// (no other text is canonically equivalent to ASCII text); otherwise keys are compared as
  /// Strings, as `matches(_: String)` does.
  private var asciiOnly = true

  var isEmpty: Bool { exact.isEmpty && prefixes.isEmpty }

  mutating func add(exact key: String) {
    exact.insert(key)
    exactBytes.append(Array(key.utf8))
    asciiOnly = asciiOnly && key.utf8.allSatisfy { $0 < 0x80 }
  }

  mutating func add(prefix: String) {
    prefixes.append(prefix)
    prefixBytes.append(Array(prefix.utf8))
    asciiOnly = asciiOnly && prefix.utf8.allSatisfy { $0 < 0x80 }
  }

  func matches(_ key: String) -> Bool {
    if exact.contains(key) { return true }
    for prefix in prefixes where key.hasPrefix(prefix) { return true }
    return false
  }

  /// ``matches(_:)`` for a key given as its UTF-8 bytes, without making a String of ASCII keys.
  func matches(utf8 key: UnsafeRawBufferPointer) -> Bool {
    if isEmpty { return false }
    guard asciiOnly, !key.contains(where: { $0 >= 0x80 }) else {
      return matches(String(decoding: key, as: UTF8.self))
    }
    for candidate in exactBytes where candidate.count == key.count {
      if candidate.withUnsafeBytes({ $0.elementsEqual(key) }) { return true }
    }
    for prefix in prefixBytes where prefix.count <= key.count {
      if prefix.withUnsafeBytes({ $0.elementsEqual(UnsafeRawBufferPointer(rebasing: key[..<prefix.count])) }) {
        return true
      }
    }
    return false
  }
}

/// The masks a document enables by name.
enum BuiltinMask: String, CaseIterable {
  case email
  case cardNumber = "card-number"
  case bearerToken = "bearer-token"

  /// The ICU pattern. Quantifiers are bounded where a long run of matching characters without
  /// the rest of the pattern would otherwise make every start position rescan the run.
  var pattern: String {
    switch self {
    case .email:
      // RFC 5321 bounds (local part ≤ 64, labels ≤ 63) over RFC 6531's internationalized
      // addresses: letters, marks and digits of any script in the local part and the domain.
      // The `@` may come percent-encoded (`%40`) or as its full-width or small forms; the
      // top-level label is letters or an IDNA A-label (`xn--…`).
      let local = #"[\p{L}\p{M}\p{N}.!#$%&'*+/=?^_`{|}~\-]{1,64}"#
      let label = #"[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}\-]{0,61}[\p{L}\p{M}\p{N}])?"#
      return local + #"(?:@|%40|\x{FF20}|\x{FE6B})"# + label + #"(?:\."# + label + #")*\."#
        + #"(?:(?i:xn--)[A-Za-z0-9\-]{1,59}|\p{L}[\p{L}\p{M}]{1,62})"#
    case .cardNumber:
      // 13 to 19 digits; between two digits, nothing or a short run of one kind of separator
      // (spaces, dashes, dots: `4111.1111.1111.1111`, `4111  1111  1111  1111`); not inside a
      // longer digit run. The Luhn check (``MaskRule/Check/luhn``) then picks the card out.
      return #"(?<![0-9])[0-9](?:(?: {1,4}|-{1,4}|\.{1,4}|\t{1,4})?[0-9]){12,18}(?![0-9])"#
    case .bearerToken:
      // `Bearer <token>` anywhere; the value after `Authorization:` / `Proxy-Authorization=`
      // with or without its scheme; and a bare JWT (`eyJ…` header and payload).
      return #"(?i:\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*)"#
        + #"|(?i:\b(?:proxy-)?authorization\s*[:=]\s*(?:[A-Za-z]+\s+)?[A-Za-z0-9\-._~+/]{4,}=*)"#
        + #"|\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"#
    }
  }

  func rule() throws -> MaskRule {
    let prefilter: MaskRule.Prefilter
    let check: MaskRule.Check
    switch self {
    case .email:
      // `@`, `%40`, and the lead bytes of U+FF20 and U+FE6B.
      prefilter = .containsAnySequence([[0x40], [0x25, 0x34, 0x30], [0xEF, 0xBC, 0xA0], [0xEF, 0xB9, 0xAB]])
      check = .none
    case .cardNumber:
      prefilter = .minimumDigits(13)
      check = .luhn
    case .bearerToken:
      prefilter = .containsCaseInsensitive([Array("bearer".utf8), Array("authorization".utf8), Array("eyj".utf8)])
      check = .none
    }
    return MaskRule(
      name: rawValue, regex: try NSRegularExpression(pattern: pattern), replacement: "[REDACTED:\(rawValue)]",
      prefilter: prefilter, check: check)
  }
}

/// One named regular expression whose matches in string values are replaced by literal text.
struct MaskRule: @unchecked Sendable {
  // @unchecked: NSRegularExpression is immutable after init and documented as safe to use from
  // several threads at once; swift-corelibs-foundation does not declare it Sendable.

  /// A cheap test on the UTF-8 bytes that is false only when the pattern cannot match, so most
  /// values never reach the regular expression engine.
  enum Prefilter: Sendable {
    case none
    case containsByte(UInt8)
    /// Any of these byte sequences, exactly.
    case containsAnySequence([[UInt8]])
    case minimumDigits(Int)
    /// Any of these lowercase ASCII needles, ignoring ASCII case.
    case containsCaseInsensitive([[UInt8]])
    /// ASCII text where consecutive bytes match each of these classes in turn (a fixed prefix
    /// every match of an own pattern starts with); text with non-ASCII bytes is always admitted.
    case asciiSequence([ByteClass])
  }

  /// A test a match must also pass to be replaced.
  enum Check: Sendable {
    case none
    /// The match is a run of digits and separators; replace the longest part of it that starts
    /// and ends at a digit-group boundary and passes the Luhn checksum, and nothing otherwise.
    case luhn
  }

  let name: String
  let regex: NSRegularExpression
  let replacement: String
  var prefilter = Prefilter.none
  var check = Check.none

  static func isValidName(_ name: String) -> Bool {
    (1...64).contains(name.utf8.count)
      && name.utf8.allSatisfy { byte in
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
          UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
          return true
        default:
          return false
        }
      }
  }
}

extension MaskRule {
  /// `text` with every match replaced, or `nil` when nothing was replaced.
  func apply(to text: String) -> String? {
    guard prefilter.admits(text.utf8) else { return nil }
    let matches = regex.matches(in: text, range: NSRange(text.startIndex..<text.endIndex, in: text))
    guard !matches.isEmpty else { return nil }
    var output = ""
    var cursor = text.startIndex
    var replaced = false
    for match in matches {
      guard let range = Range(match.range, in: text), !range.isEmpty, range.lowerBound >= cursor else { continue }
      let target: Range<String.Index>
      switch check {
      case .none:
        target = range
      case .luhn:
        guard let card = Self.luhnWindow(in: text[range]) else { continue }
        target = card
      }
      output += text[cursor..<target.lowerBound]
      output += replacement
      cursor = target.upperBound
      replaced = true
    }
    guard replaced else { return nil }
    output += text[cursor...]
    return output
  }

  /// The longest part of `candidate` (ASCII digits with single space or dash separators) that
  /// holds 13 to 19 digits, starts and ends at a digit-group boundary and passes the Luhn check.
  ///
  /// The regular expression finds the longest run that ends at a group boundary, so a stray
  /// digit group before or after a card (`1 4111 1111 1111 1111`) is part of the match; looking
  /// for a valid window inside it finds the card without masking arbitrary long numbers.
  static func luhnWindow(in candidate: Substring) -> Range<String.Index>? {
    let bytes = Array(candidate.utf8)
    var digits: [(offset: Int, value: Int, groupStart: Bool)] = []
    var afterSeparator = true
    for (offset, byte) in bytes.enumerated() {
      if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
        digits.append((offset, Int(byte - UInt8(ascii: "0")), afterSeparator))
        afterSeparator = false
      } else {
        afterSeparator = true
      }
    }
    func groupEnd(_ index: Int) -> Bool {
      index == digits.count - 1 || digits[index + 1].offset != digits[index].offset + 1
    }
    for length in stride(from: min(19, digits.count), through: 13, by: -1) {
      for start in 0...(digits.count - length) where digits[start].groupStart && groupEnd(start + length - 1) {
        var sum = 0
        for (position, index) in (start..<start + length).reversed().enumerated() {
          var value = digits[index].value
          if position % 2 == 1 {
            value *= 2
            if value > 9 { value -= 9 }
          }
          sum += value
        }
        guard sum % 10 == 0 else { continue }
        let utf8 = candidate.utf8
        let lower = utf8.index(utf8.startIndex, offsetBy: digits[start].offset)
        let upper = utf8.index(utf8.startIndex, offsetBy: digits[start + length - 1].offset + 1)
        return lower..<upper
      }
    }
    return nil
  }
}

extension MaskRule.Prefilter {
  /// `false` only when the pattern cannot match `utf8`.
  func admits(_ utf8: String.UTF8View) -> Bool {
    utf8.withContiguousStorageIfAvailable { admits(UnsafeRawBufferPointer($0)) }
      ?? Array(utf8).withUnsafeBytes { admits($0) }
  }

  /// `false` only when the pattern cannot match the UTF-8 text `bytes`.
  func admits(_ bytes: UnsafeRawBufferPointer) -> Bool {
    switch self {
    case .none:
      return true
    case .containsByte(let byte):
      return bytes.contains(byte)
    case .containsAnySequence(let needles):
      return Self.contains(needles, in: bytes, fold: false)
    case .minimumDigits(let minimum):
      var count = 0
      for byte in bytes where byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
        count += 1
        if count >= minimum { return true }
      }
      return false
    case .containsCaseInsensitive(let needles):
      return Self.contains(needles, in: bytes, fold: true)
    case .asciiSequence(let classes):
      guard classes.count <= bytes.count else { return bytes.contains { $0 >= 0x80 } }
      var sawNonASCII = false
      for start in 0...(bytes.count - classes.count) {
        if bytes[start] >= 0x80 { sawNonASCII = true }
        var offset = 0
        while offset < classes.count, classes[offset].contains(bytes[start + offset]) { offset += 1 }
        if offset == classes.count { return true }
      }
      return sawNonASCII || bytes.suffix(classes.count).contains { $0 >= 0x80 }
    }
  }

  /// Whether any needle occurs in `bytes`. With `fold`, the needles are lowercase ASCII letters,
  /// so OR-ing 0x20 into a byte folds its case for the comparison.
  private static func contains(_ needles: [[UInt8]], in bytes: UnsafeRawBufferPointer, fold: Bool) -> Bool {
    let mask: UInt8 = fold ? 0x20 : 0
    for needle in needles where needle.count <= bytes.count {
      guard let first = needle.first else { return true }
      for start in 0...(bytes.count - needle.count) where bytes[start] | mask == first {
        var offset = 1
        while offset < needle.count, bytes[start + offset] | mask == needle[offset] { offset += 1 }
        if offset == needle.count { return true }
      }
    }
    return false
  }
}

/// A set of byte values.
struct ByteClass: Sendable, Equatable {
  private var bits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

  static func == (lhs: ByteClass, rhs: ByteClass) -> Bool {
    lhs.bits.0 == rhs.bits.0 && lhs.bits.1 == rhs.bits.1 && lhs.bits.2 == rhs.bits.2 && lhs.bits.3 == rhs.bits.3
  }

  static let all: ByteClass = {
    var set = ByteClass()
    set.bits = (.max, .max, .max, .max)
    return set
  }()

  mutating func insert(_ byte: UInt8) {
    let bit = UInt64(1) << UInt64(byte & 63)
    switch byte >> 6 {
    case 0: bits.0 |= bit
    case 1: bits.1 |= bit
    case 2: bits.2 |= bit
    default: bits.3 |= bit
    }
  }

  mutating func insert(_ range: ClosedRange<UInt8>) {
    for byte in range { insert(byte) }
  }

  func contains(_ byte: UInt8) -> Bool {
    let bit = UInt64(1) << UInt64(byte & 63)
    switch byte >> 6 {
    case 0: return bits.0 & bit != 0
    case 1: return bits.1 & bit != 0
    case 2: return bits.2 & bit != 0
    default: return bits.3 & bit != 0
    }
  }

  var inverted: ByteClass {
    var set = ByteClass()
    set.bits = (~bits.0, ~bits.1, ~bits.2, ~bits.3)
    return set
  }
}

/// The fixed start of an own mask's pattern, as byte classes, so strings that cannot hold a
/// match skip the regular expression engine.
///
/// Only what is certain is read: after an optional leading `\b`, single-character atoms
/// (literals, escaped punctuation, `.`, `\d`, `\w`, `\s`, simple `[...]` classes of ASCII
/// characters and ranges) with no quantifier, `{n}`, or the mandatory part of `+` / `{n,m}`.
/// It stops at the first anything else, and gives up on patterns with a top-level `|`, an
/// inline option (`(?i)` and the like) or fewer than two classes read. Non-ASCII characters
/// need no class: the prefilter admits every string with a non-ASCII byte.
enum PatternPrefix {
  static func prefilter(for pattern: String) -> MaskRule.Prefilter {
    let classes = classes(Array(pattern.utf8))
    return classes.count >= 2 ? .asciiSequence(classes) : .none
  }

  static func classes(_ pattern: [UInt8]) -> [ByteClass] {
    if hasTopLevelAlternation(pattern) || containsSubsequence(pattern, Array("(?".utf8)) && hasInlineOption(pattern) {
      return []
    }
    var result: [ByteClass] = []
    var index = 0
    if pattern.starts(with: Array(#"\b"#.utf8)) { index = 2 }
    while index < pattern.count {
      guard let (atom, next) = self.atom(pattern, index) else { break }
      index = next
      // The quantifier, if any, after the atom.
      if index < pattern.count {
        switch pattern[index] {
        case UInt8(ascii: "?"), UInt8(ascii: "*"):
          return result
        case UInt8(ascii: "+"):
          result.append(atom)
          return result
        case UInt8(ascii: "{"):
          guard let (low, high, after) = repetition(pattern, index) else { return result }
          result += Array(repeating: atom, count: min(low, 32))
          if low != high || after < pattern.count && pattern[after] == UInt8(ascii: "?") { return result }
          index = after
          continue
        default:
          break
        }
      }
      result.append(atom)
      if result.count >= 32 { break }
    }
    return result
  }

  /// One single-character atom at `index`: its class and where the pattern goes on.
  private static func atom(_ pattern: [UInt8], _ index: Int) -> (ByteClass, Int)? {
    let byte = pattern[index]
    switch byte {
    case UInt8(ascii: "\\"):
      guard index + 1 < pattern.count else { return nil }
      guard let set = escape(pattern[index + 1]) else { return nil }
      return (set, index + 2)
    case UInt8(ascii: "["):
      return bracket(pattern, index)
    case UInt8(ascii: "."):
      return (.all, index + 1)
    case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "|"), UInt8(ascii: "^"), UInt8(ascii: "$"),
      UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"), UInt8(ascii: "}"):
      return nil
    default:
      guard byte < 0x80 else { return nil }
      var set = ByteClass()
      set.insert(byte)
      return (set, index + 1)
    }
  }

  /// `\x` as a class: escaped ASCII punctuation is itself; `\d`, `\w`, `\s` their ASCII members
  /// (their non-ASCII members are covered by admitting non-ASCII text); anything else unknown.
  private static func escape(_ byte: UInt8) -> ByteClass? {
    var set = ByteClass()
    switch byte {
    case UInt8(ascii: "d"):
      set.insert(UInt8(ascii: "0")...UInt8(ascii: "9"))
    case UInt8(ascii: "w"):
      set.insert(UInt8(ascii: "0")...UInt8(ascii: "9"))
      set.insert(UInt8(ascii: "a")...UInt8(ascii: "z"))
      set.insert(UInt8(ascii: "A")...UInt8(ascii: "Z"))
      set.insert(UInt8(ascii: "_"))
    case UInt8(ascii: "s"):
      for space in [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D] as [UInt8] { set.insert(space) }
    default:
      // Letters and digits after a backslash are classes, anchors or references; only
      // punctuation stands for itself.
      guard byte < 0x80, !(byte >= 0x30 && byte <= 0x39), !(byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) else {
        return nil
      }
      set.insert(byte)
    }
    return set
  }

  /// A simple `[...]` class: literal ASCII characters, ranges, escaped punctuation, `\d \w \s`,
  /// optionally negated. Anything richer (nested sets, `\p{…}`, `&&`) is unknown.
  private static func bracket(_ pattern: [UInt8], _ start: Int) -> (ByteClass, Int)? {
    var index = start + 1
    var negated = false
    if index < pattern.count, pattern[index] == UInt8(ascii: "^") {
      negated = true
      index += 1
    }
    var set = ByteClass()
    var first = true
    while index < pattern.count {
      var byte = pattern[index]
      if byte == UInt8(ascii: "]"), !first {
        return (negated ? set.inverted : set, index + 1)
      }
      first = false
      if byte == UInt8(ascii: "["), index + 1 < pattern.count, pattern[index + 1] == UInt8(ascii: ":") { return nil }
      if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "&") || byte >= 0x80 { return nil }
      if byte == UInt8(ascii: "\\") {
        guard index + 1 < pattern.count, let escaped = escape(pattern[index + 1]) else { return nil }
        index += 2
        // A class escape inside brackets joins the set; a range cannot start at one.
        if pattern[index - 1] == UInt8(ascii: "d") || pattern[index - 1] == UInt8(ascii: "w")
          || pattern[index - 1] == UInt8(ascii: "s")
        {
          set = union(set, escaped)
          continue
        }
        byte = pattern[index - 1]
      } else {
        index += 1
      }
      if index + 1 < pattern.count, pattern[index] == UInt8(ascii: "-"), pattern[index + 1] != UInt8(ascii: "]") {
        let upper = pattern[index + 1]
        guard upper != UInt8(ascii: "\\"), upper != UInt8(ascii: "["), upper < 0x80, upper >= byte else { return nil }
        set.insert(byte...upper)
        index += 2
      } else {
        set.insert(byte)
      }
    }
    return nil
  }

  private static func union(_ lhs: ByteClass, _ rhs: ByteClass) -> ByteClass {
    var set = lhs
    for byte in 0...255 where rhs.contains(UInt8(byte)) { set.insert(UInt8(byte)) }
    return set
  }

  /// `{n}`, `{n,}` or `{n,m}` at `index`: the bounds (`high` is `Int.max` when open) and where the
  /// pattern goes on.
  private static func repetition(_ pattern: [UInt8], _ index: Int) -> (Int, Int, Int)? {
    var cursor = index + 1
    func number() -> Int? {
      var value: Int?
      while cursor < pattern.count, pattern[cursor] >= 0x30, pattern[cursor] <= 0x39 {
        value = min((value ?? 0) * 10 + Int(pattern[cursor] - 0x30), 1 << 20)
        cursor += 1
      }
      return value
    }
    guard let low = number() else { return nil }
    var high = low
    if cursor < pattern.count, pattern[cursor] == UInt8(ascii: ",") {
      cursor += 1
      high = number() ?? Int.max
    }
    guard cursor < pattern.count, pattern[cursor] == UInt8(ascii: "}") else { return nil }
    return (low, high, cursor + 1)
  }

  /// Whether a `|` stands outside every group and class (then no prefix is common to all matches).
  private static func hasTopLevelAlternation(_ pattern: [UInt8]) -> Bool {
    var depth = 0
    var inClass = false
    var index = 0
    while index < pattern.count {
      let byte = pattern[index]
      if byte == UInt8(ascii: "\\") {
        index += 2
        continue
      }
      if inClass {
        if byte == UInt8(ascii: "]") { inClass = false }
      } else if byte == UInt8(ascii: "[") {
        inClass = true
      } else if byte == UInt8(ascii: "(") {
        depth += 1
      } else if byte == UInt8(ascii: ")") {
        depth -= 1
      } else if byte == UInt8(ascii: "|"), depth <= 0 {
        return true
      }
      index += 1
    }
    return false
  }

  /// Whether the pattern sets an inline option (`(?i)`, `(?x:…)`, …), which could change what the
  /// prefix's characters match; `(?:`, look-arounds and atomic groups are not options.
  private static func hasInlineOption(_ pattern: [UInt8]) -> Bool {
    var index = 0
    while index + 2 < pattern.count {
      if pattern[index] == UInt8(ascii: "\\") {
        index += 2
        continue
      }
      if pattern[index] == UInt8(ascii: "("), pattern[index + 1] == UInt8(ascii: "?") {
        let kind = pattern[index + 2]
        if ![UInt8(ascii: ":"), UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: "<"), UInt8(ascii: ">")].contains(
          kind)
        {
          return true
        }
      }
      index += 1
    }
    return false
  }

  private static func containsSubsequence(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= bytes.count else { return false }
    return (0...(bytes.count - needle.count)).contains { bytes[$0..<$0 + needle.count].elementsEqual(needle) }
  }
}
