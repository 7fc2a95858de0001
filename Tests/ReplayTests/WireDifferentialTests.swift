// Temporary: compares Replay's own wire walker with OTLPWireReader's before the former is deleted.
import Foundation
import Manifest
import OTLPWire
import Signing
import Testing
import Verify
import WireTestSupport

@testable import Replay

@Suite struct WireDifferentialTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  enum Outcome: Equatable {
    case visited([Int])
    case refused
  }

  static func old(_ request: [UInt8], _ signal: Signal) -> Outcome {
    var offsets: [Int] = []
    let ok = request.withUnsafeBytes { raw in
      (try? Replay.OTLPWire.forEachTimestamp(in: raw, signal: signal) { offsets.append($0) }) != nil
    }
    return ok ? .visited(offsets) : .refused
  }

  static func new(_ request: [UInt8], _ signal: Signal) -> Outcome {
    var offsets: [Int] = []
    let ok = request.withUnsafeBytes { raw in
      (try? OTLPWireReader.forEachTimestamp(in: raw, signal: signal.wireSignal) { offsets.append($0) }) != nil
    }
    return ok ? .visited(offsets) : .refused
  }

  static func oldShift(_ request: [UInt8], _ signal: Signal, _ by: Int64) -> [UInt8]? {
    var copy = request
    let ok = copy.withUnsafeMutableBytes { raw in
      (try? Replay.OTLPWire.shiftTimestamps(in: raw, signal: signal, by: by)) != nil
    }
    return ok ? copy : nil
  }

  static func newShift(_ request: [UInt8], _ signal: Signal, _ by: Int64) -> [UInt8]? {
    var copy = request
    let ok = copy.withUnsafeMutableBytes { raw in
      (try? OTLPWireReader.shiftTimestamps(in: raw, signal: signal.wireSignal, by: by)) != nil
    }
    return ok ? copy : nil
  }

  /// Records of app.otlp.pb and of every fixture bundle that verifies deeply with a key in the repo.
  static func corpus() throws -> [(String, Signal, [UInt8])] {
    var result: [(String, Signal, [UInt8])] = []
    let stream = [UInt8](try Data(contentsOf: root.appendingPathComponent("fixtures/otlp/app.otlp.pb")))
    var position = 0
    let signals: [Signal] = [.traces, .traces, .logs, .logs, .logs, .metrics, .metrics]
    var index = 0
    while position + 4 <= stream.count {
      let length = stream[position..<position + 4].reduce(0) { $0 << 8 | Int($1) }
      position += 4
      result.append(("app.otlp.pb#\(index)", signals[index], Array(stream[position..<position + length])))
      position += length
      index += 1
    }
    var keys: [Ed25519PublicKey] = []
    for key in [
      "fixtures/bundle/sample-signer.pub", "fixtures/tampered/keys/signer.pub",
      "fixtures/tampered/keys/other.pub", "fixtures/tampered/keys/untrusted.pub",
    ] {
      keys.append(try KeyFiles.loadPublicKey(path: root.appendingPathComponent(key).path))
    }
    var bundles = ["fixtures/bundle/sample.sfb.tar"]
    let tampered = root.appendingPathComponent("fixtures/tampered")
    for name in try FileManager.default.contentsOfDirectory(atPath: tampered.path).sorted()
    where name.hasSuffix(".sfb.tar") {
      bundles.append("fixtures/tampered/" + name)
    }
    for bundle in bundles {
      let path = root.appendingPathComponent(bundle).path
      guard
        let policy = try? TrustPolicy(trustedKeys: keys, threshold: 1),
        case .verified(let verified)? = try? BundleVerifier(policy: policy, depth: .deep).verify(path: path),
        let deep = try? DeeplyVerifiedBundle(verified), let reader = try? ArchivedRecordReader(deep)
      else { continue }
      for (_, blobs) in deep.streams {
        for blob in blobs {
          let segment = try reader.segment(blob)
          for (index, record) in segment.records.enumerated() {
            result.append(("\(bundle):\(blob.path)#\(index)", blob.signal, Array(segment.request(at: index))))
          }
        }
      }
    }
    return result
  }

  @Test func newWalkerVisitsTheOldOffsets() throws {
    let corpus = try Self.corpus()
    var records = 0
    var timestamps = 0
    var mutants = 0
    var refusedMutants = 0
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
      seed ^= seed << 13
      seed ^= seed >> 7
      seed ^= seed << 17
      return seed
    }
    for (name, recordSignal, request) in corpus {
      records += 1
      for signal in Signal.allCases {
        let old = Self.old(request, signal)
        #expect(old == Self.new(request, signal), "\(name) as \(signal)")
        if signal == recordSignal, case .visited(let offsets) = old { timestamps += offsets.count }
        for shift: Int64 in [1, -1, 1_000_000_000, -1_700_000_000_000_000_000, .max, .min] {
          #expect(Self.oldShift(request, signal, shift) == Self.newShift(request, signal, shift), "\(name) \(shift)")
        }
      }
      // Mutants: byte flips, truncations, insertions and deletions of each record.
      for _ in 0..<300 {
        var mutant = request
        let edits = 1 + Int(next() % 3)
        for _ in 0..<edits {
          guard !mutant.isEmpty else { break }
          let at = Int(next() % UInt64(mutant.count))
          switch next() % 5 {
          case 0: mutant[at] = UInt8(truncatingIfNeeded: next())
          case 1: mutant[at] ^= 1 << UInt8(next() % 8)
          case 2: mutant.removeSubrange(at..<mutant.count)
          case 3: mutant.insert(UInt8(truncatingIfNeeded: next()), at: at)
          default: mutant.remove(at: at)
          }
        }
        mutants += 1
        let old = Self.old(mutant, recordSignal)
        if old == .refused { refusedMutants += 1 }
        #expect(old == Self.new(mutant, recordSignal), "mutant of \(name): \(mutant)")
        #expect(
          Self.oldShift(mutant, recordSignal, 12_345) == Self.newShift(mutant, recordSignal, 12_345),
          "shifted mutant of \(name)")
      }
    }
    // Hand-made edge cases: long tags, huge field numbers, groups of every shape.
    let edges: [[UInt8]] = [
      [0x88, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01],  // 10-byte tag, field 1 varint
      [0xF9, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] + [UInt8](repeating: 0, count: 8),
      [0x03, 0x04],  // field 0 group
      [0x0B, 0x00, 0x00, 0x14],  // group 1 with field 0 varint inside, closed by end-group 2
      [0x0B, 0x0B, 0x0C],  // unclosed
      [0x0C],  // end-group outside
      [0x0E], [0x0F], [0x0B, 0x0E, 0x0C],
      [0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02],  // 10th byte 2
      [0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],  // huge length
      Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: [0x3B, 0x3C] + Wire.fixed64(7, 5)))),
      Wire.field(1, bytes: Wire.field(2, bytes: Wire.field(2, bytes: [0x38, 0x05] + Wire.fixed64(8, 5)))),
    ]
    for edge in edges {
      for signal in Signal.allCases {
        #expect(Self.old(edge, signal) == Self.new(edge, signal), "\(edge) as \(signal)")
      }
    }
    // Random short byte strings under a valid prefix, for every signal.
    for _ in 0..<20_000 {
      let length = Int(next() % 24)
      let tail = (0..<length).map { _ in UInt8(truncatingIfNeeded: next()) }
      for prefix in [[], [0x0A, UInt8(length)], [0x0A, UInt8(length + 2), 0x12, UInt8(length)]] as [[UInt8]] {
        let candidate = prefix + tail
        for signal in Signal.allCases {
          #expect(Self.old(candidate, signal) == Self.new(candidate, signal), "\(candidate) as \(signal)")
        }
      }
    }
    print("differential: \(records) records, \(timestamps) timestamps, \(mutants) mutants (\(refusedMutants) refused)")
    #expect(records > 7)
  }

  @Test func partialSuccessAgrees() {
    var seed: UInt64 = 0x1234_5678_9ABC_DEF1
    func next() -> UInt64 {
      seed ^= seed << 13
      seed ^= seed >> 7
      seed ^= seed << 17
      return seed
    }
    let valid = Wire.field(1, bytes: Wire.varint(1 << 3) + Wire.varint(42) + Wire.field(2, bytes: Array("x".utf8)))
    var bases: [[UInt8]] = [[], valid, Wire.varint(1 << 3) + Wire.varint(7) + valid, valid + valid]
    bases.append(Wire.field(1, bytes: []))
    var nonZero = 0
    for _ in 0..<50_000 {
      var candidate = bases[Int(next() % UInt64(bases.count))]
      for _ in 0..<Int(next() % 4) {
        let at = candidate.isEmpty ? 0 : Int(next() % UInt64(candidate.count + 1))
        switch next() % 3 {
        case 0 where at < candidate.count: candidate[at] = UInt8(truncatingIfNeeded: next())
        case 1: candidate.insert(UInt8(truncatingIfNeeded: next()), at: at)
        default: if at < candidate.count { candidate.remove(at: at) }
        }
      }
      let old = partialSuccessRejected(candidate)
      if old != 0 { nonZero += 1 }
      #expect(old == OTLPWireReader.partialSuccessRejected(inResponse: candidate), "\(candidate)")
    }
    print("partial success differential: 50000 responses, \(nonZero) non-zero")
  }
}
