internal import Manifest

/// One PEM block (RFC 7468): its label and the DER bytes of its body.
package struct PEMBlock {
  package var label: String
  package var der: [UInt8]

  /// Parses text holding exactly one PEM block.
  ///
  /// Text before `-----BEGIN` and after `-----END` is ignored (OpenSSL writes "Bag Attributes" and
  /// similar there), CRLF line ends are accepted, and the body may be wrapped at any width. The
  /// body itself must be canonical base64 once line breaks are removed; encapsulated headers
  /// (`Proc-Type: 4,ENCRYPTED`, the legacy OpenSSL encryption) are refused.
  package static func parse(_ text: String, source: String) throws(SigningError) -> PEMBlock {
    // "\r\n" is a single Character in Swift, so it must be named as a separator of its own.
    let lines = text.split(
      omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }
    ).map { line in
      var line = line
      while let last = line.last, last == "\r" || last == " " || last == "\t" {
        line.removeLast()
      }
      return line
    }
    var blocks: [PEMBlock] = []
    var current: (label: Substring, body: [Substring])?
    for (number, line) in lines.enumerated() {
      if var open = current {
        if line.hasPrefix("-----END ") {
          guard line == "-----END \(open.label)-----" else {
            throw SigningError(
              .keyFormat,
              "PEM line \(number + 1): '\(line)' does not close '-----BEGIN \(open.label)-----'",
              path: source)
          }
          guard let der = StrictBase64.decode(open.body.joined()) else {
            throw SigningError(
              .keyFormat, "PEM block '\(open.label)' has an invalid base64 body", path: source)
          }
          blocks.append(PEMBlock(label: String(open.label), der: der))
          current = nil
        } else if line.contains(":") {
          throw SigningError(
            .keyFormat,
            "PEM line \(number + 1): encapsulated header '\(line)' (legacy encrypted PEM) is not "
              + "supported; write the key unencrypted as PKCS#8",
            path: source)
        } else if line.hasPrefix("-----") {
          throw SigningError(
            .keyFormat, "PEM line \(number + 1): unexpected '\(line)' inside a block",
            path: source)
        } else {
          open.body.append(line)
          current = open
        }
      } else if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----"), line.count > 16 {
        let label = line.dropFirst("-----BEGIN ".count).dropLast("-----".count)
        current = (label, [])
      }
    }
    if let open = current {
      throw SigningError(
        .keyFormat, "PEM block '\(open.label)' has no '-----END \(open.label)-----' line",
        path: source)
    }
    guard blocks.count == 1, let block = blocks.first else {
      let what = blocks.isEmpty ? "no PEM block" : "\(blocks.count) PEM blocks"
      throw SigningError(.keyFormat, "expected exactly one PEM block, found \(what)", path: source)
    }
    return block
  }

  /// The PEM text: `-----BEGIN label-----`, base64 in 64-column lines, `-----END label-----`,
  /// each line ending in `\n` (the form OpenSSL writes).
  package static func format(label: String, der: [UInt8]) -> String {
    let base64 = Array(StrictBase64.encode(der).utf8)
    var text = "-----BEGIN \(label)-----\n"
    var start = 0
    while start < base64.count {
      let end = min(start + 64, base64.count)
      text += String(decoding: base64[start..<end], as: UTF8.self) + "\n"
      start = end
    }
    text += "-----END \(label)-----\n"
    return text
  }
}

/// A minimal DER reader for the two key structures this module reads (SubjectPublicKeyInfo and
/// PKCS#8 OneAsymmetricKey). It accepts only definite, minimally encoded lengths and one-byte
/// tags, and returns `nil` on anything else, so callers turn `nil` into a format error.
package struct DERReader {
  private let bytes: [UInt8]
  private var index: Int
  private let end: Int

  package init(_ bytes: [UInt8]) {
    self.bytes = bytes
    self.index = 0
    self.end = bytes.count
  }

  private init(_ bytes: [UInt8], range: Range<Int>) {
    self.bytes = bytes
    self.index = range.lowerBound
    self.end = range.upperBound
  }

  package var isAtEnd: Bool { index == end }

  /// The tag of the next element without consuming it, or `nil` at the end.
  package var peekTag: UInt8? { index < end ? bytes[index] : nil }

  /// Reads one element: its tag and a reader over its contents.
  package mutating func read() -> (tag: UInt8, contents: DERReader)? {
    guard index + 2 <= end else { return nil }
    let tag = bytes[index]
    // High-tag-number form is never used by these structures.
    guard tag & 0x1f != 0x1f else { return nil }
    var cursor = index + 1
    let first = bytes[cursor]
    cursor += 1
    var length: Int
    if first < 0x80 {
      length = Int(first)
    } else {
      let count = Int(first & 0x7f)
      // 0x80 is BER's indefinite length; more than 3 length bytes is far beyond any key.
      guard (1...3).contains(count), cursor + count <= end else { return nil }
      length = 0
      for byte in bytes[cursor..<(cursor + count)] { length = length << 8 | Int(byte) }
      cursor += count
      // DER: the shortest form, so no leading zero byte and no long form below 128.
      guard bytes[cursor - count] != 0, length >= 0x80 else { return nil }
    }
    guard length <= end - cursor else { return nil }
    let contents = DERReader(bytes, range: cursor..<(cursor + length))
    index = cursor + length
    return (tag, contents)
  }

  /// Reads one element that must have `tag` and returns its contents.
  package mutating func read(tag expected: UInt8) -> DERReader? {
    guard peekTag == expected, let (_, contents) = read() else { return nil }
    return contents
  }

  /// The remaining bytes of this reader.
  package var remainingBytes: [UInt8] { Array(bytes[index..<end]) }
}

/// Object identifiers this module can name in messages.
package enum KnownAlgorithm {
  /// Contents of the OBJECT IDENTIFIER 1.3.101.112 (id-Ed25519, RFC 8410).
  package static let ed25519: [UInt8] = [0x2b, 0x65, 0x70]

  /// A human name for an algorithm OID's contents, e.g. "RSA" or "OID 1.2.3.4".
  package static func name(of oid: [UInt8]) -> String {
    switch oid {
    case [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]: return "RSA"
    case [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a]: return "RSA-PSS"
    case [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]: return "EC"
    case [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01]: return "DSA"
    case [0x2b, 0x65, 0x6e]: return "X25519"
    case [0x2b, 0x65, 0x6f]: return "X448"
    case [0x2b, 0x65, 0x70]: return "Ed25519"
    case [0x2b, 0x65, 0x71]: return "Ed448"
    default: return "OID " + dotted(oid)
    }
  }

  /// The dotted-decimal form of an OID's contents (X.690 §8.19), or hex if it is malformed.
  static func dotted(_ oid: [UInt8]) -> String {
    var arcs: [UInt64] = []
    var value: UInt64 = 0
    var pending = false
    for byte in oid {
      guard value >> 57 == 0 else { return "0x" + Hex.encode(oid) }
      value = value << 7 | UInt64(byte & 0x7f)
      pending = true
      if byte & 0x80 == 0 {
        arcs.append(value)
        value = 0
        pending = false
      }
    }
    guard !pending, let first = arcs.first else { return "0x" + Hex.encode(oid) }
    let head: [UInt64] = first < 80 ? [first / 40, first % 40] : [2, first - 80]
    return (head + arcs.dropFirst()).map(String.init).joined(separator: ".")
  }
}
