import EvidenceIO
import Foundation
import Testing
import WireTestSupport

@testable import Manifest

@Suite struct CRCAndDigestTests {
  @Test func crc32cCheckValue() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
  }

  /// The fast path runs three lanes over blocks of 8 KiB and 256 bytes and joins them; every
  /// length around those block sizes, and every way of splitting the input, must give what one
  /// bit at a time gives.
  @Test func crc32cEqualsTheBitwiseDefinitionAtEveryBlockBoundary() {
    func bitwise(_ bytes: ArraySlice<UInt8>) -> UInt32 {
      var crc: UInt32 = 0xFFFF_FFFF
      for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
      }
      return crc ^ 0xFFFF_FFFF
    }
    var generator = SystemRandomNumberGenerator()
    let data = (0..<(3 * 8192 * 2 + 3 * 256 * 2 + 64)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    var lengths = Array(0...40)
    for block in [256, 8192] {
      for multiple in [3, 6] { lengths += (-9...9).map { multiple * block + $0 } }
    }
    lengths.append(data.count)
    for length in lengths where length >= 0 && length <= data.count {
      let slice = data[0..<length]
      let whole = slice.withUnsafeBytes { CRC32C.checksum($0) }
      #expect(whole == bitwise(slice), "length \(length)")
      let cut = length / 3
      var state = CRC32C.start
      state = data[0..<cut].withUnsafeBytes { CRC32C.update(state, $0) }
      state = data[cut..<length].withUnsafeBytes { CRC32C.update(state, $0) }
      #expect(CRC32C.finish(state) == whole, "length \(length) split at \(cut)")
    }
  }

  @Test func sha256KnownAnswers() {
    #expect(SHA256Digest.hex(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(
      SHA256Digest.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  }

  @Test func sha256StreamingEqualsOneShot() {
    let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    var hasher = SHA256Hasher()
    hasher.update(Array(data[0..<777]))
    hasher.update(Array(data[777...]))
    #expect(hasher.finalize() == SHA256Digest.of(data))
  }
}

@Suite struct CanonicalJSONTests {
  func canonical(_ text: String) throws -> String {
    String(decoding: try CanonicalJSON.serialize(try CanonicalJSON.parse(Array(text.utf8))), as: UTF8.self)
  }

  @Test func sortsKeysByUTF16CodeUnitsAndStripsWhitespace() throws {
    // U+10000 is D800 DC00 in UTF-16, so it sorts before U+FFFD although its scalar is larger.
    #expect(
      try canonical("{\"\u{FFFD}\": 1, \"\u{10000}\": 2, \"b\": [true, null], \"a\": \"x\"}")
        == "{\"a\":\"x\",\"b\":[true,null],\"\u{10000}\":2,\"\u{FFFD}\":1}")
  }

  @Test func escapesOnlyWhatJCSEscapes() throws {
    #expect(try canonical(#"["\u0001\t\n\"\\\/é\u2028"]"#) == "[\"\\u0001\\t\\n\\\"\\\\/é\u{2028}\"]")
  }

  @Test func integersInRangeAndNothingElse() throws {
    #expect(try canonical("[0, 9007199254740991, -5]") == "[0,9007199254740991,-5]")
    for bad in ["[9007199254740992]", "[1.5]", "[1e3]", "[1.0]"] {
      #expect(throws: JSONError.self) { _ = try canonical(bad) }
    }
  }

  @Test func rejectsDuplicateKeysEvenWhenEscapedDifferently() {
    #expect {
      _ = try CanonicalJSON.parse(Array(#"{"a":1,"\u0061":2}"#.utf8))
    } throws: { ($0 as? JSONError)?.kind == .duplicateKey }
  }

  @Test func rejectsMalformedInput() {
    let cases: [[UInt8]] = [
      Array("{".utf8), Array("[1,]".utf8), Array("\"\u{01}\"".utf8), [0x22, 0xFF, 0x22],
      Array(#""\ud800""#.utf8), Array("01".utf8), Array("[1] x".utf8), [0xEF, 0xBB, 0xBF] + Array("{}".utf8),
      Array(String(repeating: "[", count: 200).utf8),
    ]
    for bytes in cases {
      #expect(throws: JSONError.self) { _ = try CanonicalJSON.parse(bytes) }
    }
  }

  @Test func keepsLargeNumberTokensExactly() throws {
    let value = try CanonicalJSON.parse(Array(#"{"t":18446744073709551615}"#.utf8))
    #expect(value["t"] == .number("18446744073709551615"))
  }
}

@Suite struct SegmentFramingTests {
  let header = SegmentHeader(signal: .traces, tenant: "acme", node: "node-1")

  func segmentBytes(_ records: [SegmentRecord]) -> [UInt8] {
    header.encoded() + records.flatMap { $0.framed() }
  }

  func parse(_ bytes: [UInt8], pieceSize: Int) throws -> (SegmentHeader?, [SegmentRecord]) {
    var parser = SegmentStreamParser()
    var records: [SegmentRecord] = []
    var start = 0
    while start < bytes.count {
      let end = min(bytes.count, start + pieceSize)
      try Array(bytes[start..<end]).withUnsafeBytes { piece in
        try parser.consume(piece) { record in
          records.append(
            SegmentRecord(seq: record.seq, receivedUnixNano: record.receivedUnixNano, request: Array(record.request)))
        }
      }
      start = end
    }
    try parser.finish()
    return (parser.header, records)
  }

  @Test func headerLayoutIsExact() {
    #expect(
      header.encoded() == [0x53, 0x46, 0x53, 0x47, 1, 1, 0, 4] + Array("acme".utf8) + [0, 6] + Array("node-1".utf8))
  }

  @Test func recordLayoutIsExact() {
    let framed = SegmentRecord(seq: 7, receivedUnixNano: 9, request: [0xAA]).framed()
    #expect(Array(framed[0..<4]) == [0x53, 0x46, 0x52, 0x01])
    #expect(Array(framed[4..<8]) == [0, 0, 0, 17])
    #expect(Array(framed[12..<29]) == [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9, 0xAA])
    let crc = CRC32C.checksum(Array(framed[12...]))
    #expect(
      Array(framed[8..<12]) == [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
  }

  @Test func parsesTheSameWhetherFedWholeOrOneByteAtATime() throws {
    let records = (0..<5).map {
      SegmentRecord(seq: UInt64(10 + $0), receivedUnixNano: UInt64($0), request: Wire.traces([(1, 2)]))
    }
    let bytes = segmentBytes(records)
    for pieceSize in [1, 3, 12, 4096] {
      let (parsedHeader, parsed) = try parse(bytes, pieceSize: pieceSize)
      #expect(parsedHeader == header)
      #expect(parsed == records)
    }
  }

  @Test func tornTailIsDetectedAsTruncationOrCRCMismatch() throws {
    let bytes = segmentBytes([
      SegmentRecord(seq: 0, receivedUnixNano: 0, request: [1, 2, 3]),
      SegmentRecord(seq: 1, receivedUnixNano: 0, request: [4, 5, 6]),
    ])
    for cut in 1..<30 {
      #expect { _ = try parse(Array(bytes.dropLast(cut)), pieceSize: 7) } throws: {
        ($0 as? SegmentFormatError)?.kind == .truncated
      }
    }
    var flipped = bytes
    flipped[flipped.count - 1] ^= 0x01
    #expect { _ = try parse(flipped, pieceSize: 64) } throws: { ($0 as? SegmentFormatError)?.kind == .crcMismatch }
  }

  @Test func recordLimitsAndBadMagic() throws {
    var bytes = segmentBytes([SegmentRecord(seq: 0, receivedUnixNano: 0, request: [])])
    let recordStart = header.encoded().count
    var oversized = bytes
    oversized.replaceSubrange(recordStart + 4..<recordStart + 8, with: [0x01, 0x00, 0x00, 0x01])
    #expect { _ = try parse(oversized, pieceSize: 64) } throws: { ($0 as? SegmentFormatError)?.kind == .recordTooLarge }
    bytes[recordStart + 3] = 2
    #expect { _ = try parse(bytes, pieceSize: 64) } throws: { ($0 as? SegmentFormatError)?.kind == .badRecord }
  }
}

@Suite struct ZstdTests {
  let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: ($0 * 7) % 251) }

  @Test func roundTripsAndWritesContentSizeAndChecksum() throws {
    let compressed = try Zstd.compress(payload)
    #expect(Zstd.hasFrameMagic(compressed))
    // Frame header descriptor: content-size flag bits set and checksum flag (bit 2) set.
    #expect(compressed[4] & 0x04 != 0)
    #expect(try Zstd.decompress(compressed, maxOutputBytes: payload.count) == payload)
  }

  @Test func stopsAtTheOutputCap() throws {
    let compressed = try Zstd.compress(payload)
    #expect { _ = try Zstd.decompress(compressed, maxOutputBytes: payload.count - 1) } throws: {
      ($0 as? ZstdError)?.kind == .outputLimitExceeded
    }
  }

  @Test func storedFramesDecodeToTheirContent() throws {
    for count in [1, 1000, 128 << 10, (128 << 10) + 1, 400_000] {
      let content = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) }
      let frame = Zstd.storedFrame(content[...])
      #expect(try Zstd.decompress(frame, maxOutputBytes: count) == content, "\(count) bytes")
      #expect(frame.count < count + 32)
    }
  }

  @Test func sealedSegmentsStayWithinTheRatioLimitHoweverRepetitive() throws {
    let header = SegmentHeader(signal: .logs, tenant: "t", node: "n")
    let request = Wire.logs(Array(repeating: (5, 5), count: 2000))
    let records = (0..<300).map { SegmentRecord(seq: UInt64($0), receivedUnixNano: 0, request: request) }
    let sealed = try SegmentSealer.seal(header: header, records: records)
    guard case .bytes(let blob) = sealed.data else {
      Issue.record("expected bytes")
      return
    }
    #expect(sealed.entry.uncompressedSize > 128 * 10_000)
    #expect(sealed.entry.uncompressedSize <= 128 * sealed.entry.size)
    let segment = try Zstd.decompress(blob, maxOutputBytes: Int(sealed.entry.uncompressedSize))
    #expect(segment == header.encoded() + records.flatMap { $0.framed() })
  }

  @Test func rejectsTrailingSkippableAndTruncatedData() throws {
    let compressed = try Zstd.compress(payload)
    let skippable: [UInt8] = [0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0]
    for bad in [
      compressed + [0], skippable + compressed, compressed + skippable, Array(compressed.dropLast(1)), [], [1, 2, 3],
    ] {
      #expect { _ = try Zstd.decompress(bad, maxOutputBytes: 1 << 20) } throws: { ($0 as? ZstdError)?.kind == .corrupt }
    }
  }
}

@Suite struct OTLPTimeScanTests {
  @Test func spansUseStartForFirstAndEndForLast() throws {
    let summary = try OTLPTimeScan.scan(Wire.traces([(50, 70), (40, 45), (60, 90)]), signal: .traces)
    #expect(summary.itemCount == 3)
    #expect(summary.range.first == 40 && summary.range.last == 90)
  }

  @Test func logsFallBackToObservedTime() throws {
    let summary = try OTLPTimeScan.scan(Wire.logs([(0, 500), (300, 9_999)]), signal: .logs)
    #expect(summary.range.first == 300 && summary.range.last == 500)
  }

  @Test func metricDataPoints() throws {
    let summary = try OTLPTimeScan.scan(Wire.gauge([1_718_000_000_000_010_243, 5]), signal: .metrics)
    #expect(summary.itemCount == 2)
    #expect(summary.range.first == 5 && summary.range.last == 1_718_000_000_000_010_243)
  }

  @Test func emptyRequestHasZeroRange() throws {
    let summary = try OTLPTimeScan.scan([], signal: .logs)
    #expect(summary.itemCount == 0 && summary.range.first == 0 && summary.range.last == 0)
  }

  @Test func skipsWellFormedGroupsAndRefusesBrokenOnes() throws {
    // An unknown field 20 written as a group (wire types 3/4) inside a span: valid protobuf.
    let group: [UInt8] = [0xA3, 0x01, 0x08, 0x05, 0xA4, 0x01]
    let span = Wire.fixed64(7, 10) + group + Wire.fixed64(8, 20)
    let request = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: span)))
    let summary = try OTLPTimeScan.scan(request, signal: .traces)
    #expect(summary.range.first == 10 && summary.range.last == 20)
    let unclosed = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: Array(group.dropLast(2)))))
    let mismatched = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: [0xA3, 0x01, 0xAC, 0x01])))
    for bad in [unclosed, mismatched] {
      #expect(throws: OTLPWireError.self) { _ = try OTLPTimeScan.scan(bad, signal: .traces) }
    }
  }

  @Test func rejectsBadWireOnTheWalkedPath() {
    // A timestamp encoded as varint instead of fixed64.
    let varintTime = Wire.field(
      1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: Wire.varint(7 << 3) + Wire.varint(5))))
    let truncated = Array(Wire.traces([(1, 2)]).dropLast(3))
    let group: [UInt8] = [0x0B]
    for bad in [varintTime, truncated, group] {
      #expect(throws: OTLPWireError.self) { _ = try OTLPTimeScan.scan(bad, signal: .traces) }
    }
  }
}
