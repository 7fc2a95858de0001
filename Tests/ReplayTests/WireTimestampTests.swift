import Manifest
import Testing
import WireTestSupport

@testable import Replay

@Suite struct WireTimestampTests {
  func shifted(_ request: [UInt8], _ signal: Signal, by offset: Int64) throws -> [UInt8] {
    var copy = request
    try copy.withUnsafeMutableBytes { raw in
      Result { () throws(OTLPWire.WalkError) in try OTLPWire.shiftTimestamps(in: raw, signal: signal, by: offset) }
    }.get()
    return copy
  }

  func times(_ request: [UInt8], _ signal: Signal) throws -> [UInt64] {
    var found: [UInt64] = []
    try request.withUnsafeBytes { raw in
      Result { () throws(OTLPWire.WalkError) in
        try OTLPWire.forEachTimestamp(in: raw, signal: signal) { offset in
          found.append(raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian)
        }
      }
    }.get()
    return found
  }

  @Test func spanStartEndAndEventTimesShiftAndNothingElseChanges() throws {
    let event = Wire.field(11, bytes: Wire.fixed64(1, 150) + Wire.field(2, bytes: Array("ev".utf8)))
    // A fixed64 field 9 in a span is not a time (it would be attributes, but stands for "other").
    let span =
      Wire.field(1, bytes: [UInt8](repeating: 0xAB, count: 16)) + Wire.fixed64(7, 100) + Wire.fixed64(8, 200) + event
      + Wire.fixed64(12, 999)
    let request = Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: span)))
    let result = try shifted(request, .traces, by: 1_000)
    #expect(result.count == request.count)
    #expect(try times(result, .traces) == [1_100, 1_200, 1_150])
    let expected =
      Wire.field(1, bytes: [UInt8](repeating: 0xAB, count: 16)) + Wire.fixed64(7, 1_100) + Wire.fixed64(8, 1_200)
      + Wire.field(11, bytes: Wire.fixed64(1, 1_150) + Wire.field(2, bytes: Array("ev".utf8))) + Wire.fixed64(12, 999)
    #expect(result == Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: expected))))
  }

  @Test func logTimeAndObservedTimeShiftButZeroStaysUnset() throws {
    let request = Wire.logs([(0, 500), (700, 800)])
    let result = try shifted(request, .logs, by: -100)
    #expect(try times(result, .logs) == [0, 400, 600, 700])
  }

  @Test func everyMetricPointKindAndExemplarsShift() throws {
    let exemplar = Wire.fixed64(2, 50)
    let number = Wire.fixed64(2, 10) + Wire.fixed64(3, 20) + Wire.field(5, bytes: exemplar)
    let histogram = Wire.fixed64(2, 11) + Wire.fixed64(3, 21) + Wire.field(8, bytes: exemplar)
    let exponential = Wire.fixed64(2, 12) + Wire.fixed64(3, 22) + Wire.field(11, bytes: exemplar)
    let summary = Wire.fixed64(2, 13) + Wire.fixed64(3, 23)
    let metrics =
      Wire.field(2, bytes: Wire.field(5, bytes: Wire.field(1, bytes: number)))
      + Wire.field(2, bytes: Wire.field(7, bytes: Wire.field(1, bytes: number)))
      + Wire.field(2, bytes: Wire.field(9, bytes: Wire.field(1, bytes: histogram)))
      + Wire.field(2, bytes: Wire.field(10, bytes: Wire.field(1, bytes: exponential)))
      + Wire.field(2, bytes: Wire.field(11, bytes: Wire.field(1, bytes: summary)))
    let request = Wire.field(1, bytes: Wire.field(2, bytes: metrics))
    let result = try shifted(request, .metrics, by: 5)
    #expect(
      try times(result, .metrics) == [15, 25, 55, 15, 25, 55, 16, 26, 55, 17, 27, 55, 18, 28])
    #expect(result.count == request.count)
  }

  @Test func newestTimestampIsTheLargestOnThePath() throws {
    let request = Wire.traces([(100, 900), (300, 400)])
    let newest = try request.withUnsafeBytes { raw in
      Result { () throws(OTLPWire.WalkError) in try OTLPWire.newestTimestamp(in: raw, signal: .traces) }
    }.get()
    #expect(newest == 900)
  }

  @Test func shiftsThatLeaveTheRangeAreErrorsNotWraps() throws {
    #expect(throws: OTLPWire.WalkError.self) { try shifted(Wire.logs([(50, 0)]), .logs, by: -50) }
    #expect(throws: OTLPWire.WalkError.self) { try shifted(Wire.logs([(UInt64.max - 1, 0)]), .logs, by: 2) }
  }

  @Test func malformedWireDataIsAnErrorAtEveryTruncation() throws {
    let request = Wire.traces([(100, 200), (300, 400)])
    for length in 1..<request.count {
      // Every proper prefix either walks (ends between fields) or throws; none crashes.
      _ = try? shifted(Array(request.prefix(length)), .traces, by: 1)
    }
    #expect(throws: OTLPWire.WalkError.self) { try times([0x0F], .traces) }  // wire type 7
    #expect(throws: OTLPWire.WalkError.self) { try times([0x0A, 0x05, 0x01], .traces) }  // length overrun
  }

  @Test func groupsAreSkippedLikeTheVerifierDoes() throws {
    // Field 5 start group, a varint inside, end group; then a span.
    let request = [0x2B, 0x08, 0x01, 0x2C] + Wire.traces([(7, 8)])
    #expect(try times(request, .traces) == [7, 8])
  }
}
