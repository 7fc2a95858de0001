import Foundation
import Keys
import Testing

@Suite struct StrictBase64Tests {
  @Test(
    arguments: [
      ("", [UInt8]()),
      ("QQ==", [0x41]),
      ("QUI=", [0x41, 0x42]),
      ("QUJD", [0x41, 0x42, 0x43]),
      ("+/8=", [0xfb, 0xff]),
      ("AAAA", [0, 0, 0]),
      ("////", [0xff, 0xff, 0xff]),
    ] as [(String, [UInt8])])
  func acceptsCanonical(_ text: String, _ bytes: [UInt8]) {
    #expect(StrictBase64.decode(text) == bytes)
    #expect(StrictBase64.encode(bytes) == text)
  }

  @Test(arguments: [
    "Q", "QQ", "QQ=", "QQ===", "QUJDR",  // length not a multiple of 4
    "QR==", "QUJ=", "Qf==", "QUL=",  // non-canonical trailing bits
    "-_8=", "QQ-_",  // URL-safe alphabet
    "QQ== ", " QQ==", "QU I", "QUJD\n", "QU\r\nJD", "QUJD\t",  // whitespace
    "Q===", "====", "=QQQ", "Q=Q=", "QQ==QQ==", "QQ=A",  // misplaced padding
    "QUJ\u{0}", "QUé=",  // bytes outside the alphabet
  ])
  func rejects(_ text: String) {
    #expect(StrictBase64.decode(text) == nil)
  }

  @Test func roundTripsAndAgreesWithFoundation() {
    var generator = SystemRandomNumberGenerator()
    for length in 0..<200 {
      let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
      let encoded = StrictBase64.encode(bytes)
      #expect(encoded == Data(bytes).base64EncodedString())
      #expect(StrictBase64.decode(encoded) == bytes)
    }
  }
}
