public import Manifest

/// The member names and header bytes of a bundle's ustar archive (BUNDLE-FORMAT.md §2).
public enum BundleTar {
  public static let blockSize = 512
  public static let manifestName = "manifest.json"
  public static let envelopeName = "manifest.dsse.json"

  /// The one legal header for a member of `name` and `size` (§2.1); `nil` when the name does
  /// not fit the 100-byte field or the size does not fit 11 octal digits.
  public static func canonicalHeader(name: String, size: UInt64) -> [UInt8]? {
    let nameBytes = Array(name.utf8)
    guard nameBytes.count <= 100, size < 1 << 33 else { return nil }
    var header = [UInt8](repeating: 0, count: blockSize)
    header.replaceSubrange(0..<nameBytes.count, with: nameBytes)
    let fixed: [(Int, String)] = [
      (100, "000644 \0"), (108, "000000 \0"), (116, "000000 \0"),
      (124, octal(size, digits: 11) + " "), (136, "00000000000 "),
      (148, "        "), (156, "0"), (257, "ustar\0"), (263, "00"),
      (329, "000000 \0"), (337, "000000 \0"),
    ]
    for (offset, text) in fixed {
      header.replaceSubrange(offset..<offset + text.utf8.count, with: Array(text.utf8))
    }
    let sum = header.reduce(0) { $0 + Int($1) }
    header.replaceSubrange(148..<156, with: Array((octal(UInt64(sum), digits: 6) + "\0 ").utf8))
    return header
  }

  /// `size` rounded up to whole blocks: a member's data and its zero padding.
  public static func paddedSize(_ size: Int) -> Int {
    (size + blockSize - 1) / blockSize * blockSize
  }

  static func octal(_ value: UInt64, digits: Int) -> String {
    let text = String(value, radix: 8)
    return String(repeating: "0", count: max(0, digits - text.count)) + text
  }
}

/// Where one member's data lies in the archive.
public struct TarMember: Sendable, Equatable {
  public var name: String
  /// Offset of the member's 512-byte header.
  public var headerOffset: Int
  /// Offset of the first data byte.
  public var dataOffset: Int
  public var size: Int
}

/// Random access to the bytes of a bundle, from a file or from memory.
public protocol ByteSource: ~Copyable {
  /// Total length in bytes.
  var count: Int { get }
  /// Fills `buffer` with the bytes at `offset` (callers stay within ``count``).
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(BundleIOError)
}

extension ByteSource where Self: ~Copyable {
  /// Exactly `count` bytes at `offset`.
  public func bytes(at offset: Int, count: Int) throws(BundleIOError) -> [UInt8] {
    var failure: BundleIOError?
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
      do throws(BundleIOError) {
        try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
        initialized = count
      } catch {
        // Zero what was not read so the array is fully initialized before it is dropped.
        buffer.initialize(repeating: 0)
        initialized = count
        failure = error
      }
    }
    if let failure { throw failure }
    return bytes
  }
}

/// Reading or writing a bundle file failed: an I/O problem, not a format problem.
public struct BundleIOError: Error, CustomStringConvertible, Sendable {
  public var path: String
  public var message: String
  /// The output was refused because something already exists at `path` (and replacing it was
  /// not asked for): the caller's choice to make, not an I/O failure.
  public var outputExists: Bool

  public init(path: String, message: String, outputExists: Bool = false) {
    self.path = path
    self.message = message
    self.outputExists = outputExists
  }

  public var description: String { "\(path): \(message)" }
}

/// A bundle held in memory (tests, fuzzing, small bundles).
public struct MemoryByteSource: ByteSource {
  public let data: [UInt8]

  public init(_ data: [UInt8]) { self.data = data }

  public var count: Int { data.count }

  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
    data.withUnsafeBytes { all in
      buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[offset..<offset + buffer.count]))
    }
  }
}

/// Step 1 of §9: walks every header of the archive and checks its structure, without reading
/// member data (only padding bytes are read).
public struct TarStructureChecker {
  let limits: VerificationLimits

  public init(limits: VerificationLimits) { self.limits = limits }

  /// The members in archive order, or the first finding of step 1.
  public func members(of source: some ByteSource) throws -> [TarMember] {
    var members: [TarMember] = []
    var seen: Set<String> = []
    var position = 0
    let total = source.count
    while true {
      guard total - position >= BundleTar.blockSize else {
        throw Finding(.tarTruncated, "archive ends inside a header block at byte \(position)")
      }
      let block = try source.bytes(at: position, count: BundleTar.blockSize)
      if block.allSatisfy({ $0 == 0 }) {
        try checkEndMarker(source, at: position)
        return members
      }
      let member = try checkHeader(block, at: position, index: members.count)
      guard seen.insert(member.name).inserted else {
        throw Finding(.tarDuplicateMember, "member \"\(member.name)\" appears twice (header at byte \(position))")
      }
      guard members.count < limits.maxMembers else {
        throw Finding(.limitMembers, "archive has more than \(limits.maxMembers) members")
      }
      let isManifestMember = member.name == BundleTar.manifestName || member.name == BundleTar.envelopeName
      let sizeLimit = isManifestMember ? limits.maxManifestSize : limits.maxBlobSize
      guard member.size <= sizeLimit else {
        throw Finding(
          .limitMemberSize, "member \"\(member.name)\" is \(member.size) bytes, over the limit of \(sizeLimit)")
      }
      let padded = BundleTar.paddedSize(member.size)
      guard total - member.dataOffset >= padded else {
        throw Finding(.tarTruncated, "member \"\(member.name)\" data runs past the end of the archive")
      }
      let paddingCount = padded - member.size
      if paddingCount > 0 {
        let padding = try source.bytes(at: member.dataOffset + member.size, count: paddingCount)
        if let bad = padding.firstIndex(where: { $0 != 0 }) {
          throw Finding(
            .tarNoncanonicalPadding,
            "non-zero padding after member \"\(member.name)\" at byte \(member.dataOffset + member.size + bad)")
        }
      }
      members.append(member)
      position = member.dataOffset + padded
    }
  }

  private func checkEndMarker(_ source: some ByteSource, at position: Int) throws {
    let second = position + BundleTar.blockSize
    guard source.count - second >= BundleTar.blockSize else {
      throw Finding(.tarTruncated, "archive ends after one zero block at byte \(position) (two are required)")
    }
    let block = try source.bytes(at: second, count: BundleTar.blockSize)
    if let bad = block.firstIndex(where: { $0 != 0 }) {
      throw Finding(.tarBadHeader, "second end-of-archive block is not zero (byte \(second + bad))")
    }
    let end = second + BundleTar.blockSize
    guard source.count == end else {
      throw Finding(.tarTrailingData, "\(source.count - end) bytes after the end-of-archive blocks at byte \(end)")
    }
  }

  private func checkHeader(_ block: [UInt8], at position: Int, index: Int) throws -> TarMember {
    let stored = parseOctal(block[148..<156])
    var sum = 0
    for (offset, byte) in block.enumerated() {
      sum += (148..<156).contains(offset) ? 0x20 : Int(byte)
    }
    guard let stored, stored == UInt64(sum) else {
      throw Finding(.tarBadHeader, "header checksum mismatch in the header at byte \(position)")
    }
    guard block[257..<263].elementsEqual(Array("ustar\0".utf8)), block[263..<265].elementsEqual(Array("00".utf8))
    else {
      throw Finding(.tarBadHeader, "header at byte \(position) is not ustar (magic/version)")
    }
    let typeflag = block[156]
    guard typeflag == UInt8(ascii: "0") else {
      let shown = typeflag == 0 ? "NUL" : String(UnicodeScalar(typeflag))
      throw Finding(.tarForbiddenType, "header at byte \(position) has typeflag '\(shown)' (only regular files)")
    }
    let name = fieldText(block[0..<100])
    let prefix = fieldText(block[345..<500])
    let fullName = prefix.isEmpty ? name : prefix + "/" + name
    guard NameRules.isSafeMemberPath(fullName) else {
      throw Finding(.tarUnsafePath, "unsafe member name \(quoted(fullName)) in the header at byte \(position)")
    }
    guard let size = parseOctal(block[124..<136]),
      let canonical = BundleTar.canonicalHeader(name: fullName, size: size)
    else {
      throw Finding(.tarNoncanonicalHeader, "member \"\(fullName)\": size field is not 11 octal digits")
    }
    if canonical != block {
      throw Finding(
        .tarNoncanonicalHeader,
        "member \"\(fullName)\": header differs from the canonical header in \(differingFields(block, canonical))")
    }
    return TarMember(
      name: fullName, headerOffset: position, dataOffset: position + BundleTar.blockSize, size: Int(size))
  }

  private static let fieldNames: [(String, Range<Int>)] = [
    ("name", 0..<100), ("mode", 100..<108), ("uid", 108..<116), ("gid", 116..<124),
    ("size", 124..<136), ("mtime", 136..<148), ("chksum", 148..<156), ("typeflag", 156..<157),
    ("linkname", 157..<257), ("magic", 257..<263), ("version", 263..<265), ("uname", 265..<297),
    ("gname", 297..<329), ("devmajor", 329..<337), ("devminor", 337..<345), ("prefix", 345..<500),
    ("pad", 500..<512),
  ]

  private func differingFields(_ block: [UInt8], _ canonical: [UInt8]) -> String {
    TarStructureChecker.fieldNames.filter { !block[$0.1].elementsEqual(canonical[$0.1]) }.map(\.0)
      .joined(separator: ", ")
  }

  /// Text up to the first NUL; non-ASCII bytes make the name fail the path rule later.
  private func fieldText(_ field: ArraySlice<UInt8>) -> String {
    let end = field.firstIndex(of: 0) ?? field.endIndex
    return String(decoding: field[field.startIndex..<end], as: UTF8.self)
  }

  /// Octal digits, optionally led by spaces and ended by a space or NUL; `nil` otherwise.
  private func parseOctal(_ field: ArraySlice<UInt8>) -> UInt64? {
    var value: UInt64 = 0
    var sawDigit = false
    var index = field.startIndex
    while index < field.endIndex, field[index] == 0x20, !sawDigit { index += 1 }
    while index < field.endIndex, (0x30...0x37).contains(field[index]) {
      guard value < 1 << 60 else { return nil }
      value = value << 3 | UInt64(field[index] - 0x30)
      sawDigit = true
      index += 1
    }
    guard sawDigit else { return nil }
    while index < field.endIndex {
      guard field[index] == 0 || field[index] == 0x20 else { return nil }
      index += 1
    }
    return value
  }

  private func quoted(_ name: String) -> String {
    "\""
      + name.unicodeScalars.map {
        $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "\\u{\(String($0.value, radix: 16))}"
      }.joined() + "\""
  }
}
