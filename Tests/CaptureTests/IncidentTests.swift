import Foundation
import Synchronization
import Testing

@testable import Capture
@testable import Incidents

/// A clock the test moves by hand.
private final class ManualClock: Sendable {
  let now = Mutex<UInt64>(1_000_000_000_000)
  func advance(seconds: UInt64) { now.withLock { $0 += seconds * 1_000_000_000 } }
  var read: @Sendable () -> UInt64 { { self.now.withLock { $0 } } }
}

@Suite struct IncidentTests {
  @Test func startStopAndListSurviveAReopen() throws {
    let scratch = try ScratchDirectory()
    let clock = ManualClock()
    let changes = Mutex<[String]>([])
    let manager = try IncidentManager(
      dataDirectory: scratch.path, clock: clock.read,
      onChange: { change in changes.withLock { $0.append("\(change.kind.rawValue) \(change.incident.id)") } })
    let started = try manager.start(
      IncidentStartRequest(reason: "fraud", id: "INC-1", declaredBy: "ana@host", lookbackNanos: 60_000_000_000))
    #expect(started.windowStartUnixNano == clock.read() - 60_000_000_000)
    clock.advance(seconds: 10)
    let stopped = try manager.stop(id: "INC-1", by: "bob@host")
    #expect(stopped.state == .stopped && stopped.endUnixNano == clock.read() && stopped.endedBy == "bob@host")
    #expect(changes.withLock { $0 } == ["started INC-1", "stopped INC-1"])
    let reopened = try IncidentManager(dataDirectory: scratch.path, clock: clock.read)
    #expect(reopened.list() == [stopped])
  }

  @Test func aTTLEndsTheIncidentAtItsTimeEvenIfCheckedLate() throws {
    let scratch = try ScratchDirectory()
    let clock = ManualClock()
    let manager = try IncidentManager(dataDirectory: scratch.path, clock: clock.read)
    let incident = try manager.start(IncidentStartRequest(reason: "probe", declaredBy: "x", ttlNanos: 3_000_000_000))
    clock.advance(seconds: 2)
    #expect(manager.expireDue().isEmpty)
    #expect(manager.isKeptInFull(tenant: "any"))
    clock.advance(seconds: 60)
    let expired = manager.expireDue()
    #expect(expired.map(\.id) == [incident.id])
    #expect(expired.first?.endUnixNano == incident.startUnixNano + 3_000_000_000)
    #expect(expired.first?.state == .expired)
    #expect(!manager.isKeptInFull(tenant: "any"))
  }

  @Test func pinsCoverTheWindowOfCoveredTenantsUntilTheRetentionEnds() throws {
    let scratch = try ScratchDirectory()
    let clock = ManualClock()
    let manager = try IncidentManager(
      dataDirectory: scratch.path, pinRetentionNanos: 100_000_000_000, clock: clock.read)
    let incident = try manager.start(
      IncidentStartRequest(reason: "r", id: "A", declaredBy: "x", lookbackNanos: 5_000_000_000, tenants: ["acme"]))
    let start = incident.startUnixNano
    #expect(manager.pins(tenant: "acme", fromUnixNano: start - 4_000_000_000, toUnixNano: start - 3_000_000_000))
    #expect(!manager.pins(tenant: "acme", fromUnixNano: start - 9_000_000_000, toUnixNano: start - 6_000_000_000))
    #expect(!manager.pins(tenant: "globex", fromUnixNano: start, toUnixNano: start))
    clock.advance(seconds: 10)
    _ = try manager.stop(id: "A", by: "x")
    #expect(!manager.pins(tenant: "acme", fromUnixNano: start + 20_000_000_000, toUnixNano: start + 30_000_000_000))
    clock.advance(seconds: 99)
    #expect(manager.pins(tenant: "acme", fromUnixNano: start, toUnixNano: start))
    clock.advance(seconds: 2)
    #expect(!manager.pins(tenant: "acme", fromUnixNano: start, toUnixNano: start))
  }

  @Test func refusesBadRequestsAndDuplicates() throws {
    let scratch = try ScratchDirectory()
    let manager = try IncidentManager(dataDirectory: scratch.path)
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "SAME", declaredBy: "x"))
    let cases: [(IncidentStartRequest, IncidentError.Kind)] = [
      (IncidentStartRequest(reason: "r", id: "SAME", declaredBy: "x"), .conflict),
      (IncidentStartRequest(reason: "  ", declaredBy: "x"), .invalid),
      (IncidentStartRequest(reason: "r", id: "../etc", declaredBy: "x"), .invalid),
      (IncidentStartRequest(reason: "r", declaredBy: "x", tenants: ["a/b"]), .invalid),
      (IncidentStartRequest(reason: "r\u{7}", declaredBy: "x"), .invalid),
    ]
    for (request, kind) in cases {
      #expect(throws: IncidentError.self) { try manager.start(request) }
      do {
        _ = try manager.start(request)
      } catch {
        #expect(error.kind == kind)
      }
    }
    #expect(throws: IncidentError.self) { try manager.stop(id: "NOPE", by: "x") }
  }

  @Test func aTornLastLineOfTheLogIsIgnoredAndCutBeforeTheNextAppend() throws {
    let scratch = try ScratchDirectory()
    let manager = try IncidentManager(dataDirectory: scratch.path)
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "ONE", declaredBy: "x"))
    let path = scratch.path + "/incidents.jsonl"
    let handle = try #require(FileHandle(forWritingAtPath: path))
    handle.seekToEndOfFile()
    handle.write(Data("{\"declaredBy\":\"x\",\"id\":\"TW".utf8))
    try handle.close()
    let reopened = try IncidentManager(dataDirectory: scratch.path)
    #expect(reopened.list().map(\.id) == ["ONE"])
    #expect(reopened.skippedTornLine == 2)
    _ = try reopened.start(IncidentStartRequest(reason: "r", id: "TWO", declaredBy: "x"))
    let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
    #expect(lines.count == 2)
    let ids = try IncidentManager(dataDirectory: scratch.path).list().map(\.id)
    #expect(ids == ["ONE", "TWO"], "log: \(lines)")
  }

  @Test func aBadLineBeforeTheLastRefusesTheLogNamingTheLine() throws {
    let scratch = try ScratchDirectory()
    let manager = try IncidentManager(dataDirectory: scratch.path)
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "ONE", declaredBy: "x"))
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "TWO", declaredBy: "x"))
    _ = try manager.stop(id: "ONE", by: "x")
    let path = scratch.path + "/incidents.jsonl"
    var lines = try String(contentsOfFile: path, encoding: .utf8).split(
      separator: "\n", omittingEmptySubsequences: false)
    #expect(lines.count == 4 && lines[3].isEmpty)
    // Line 2 damaged, the log still ends with a newline: not a torn tail, so nothing is skipped
    // silently (skipping it would forget incident TWO and unpin its evidence).
    lines[1] = "{\"id\":\"TWO\",garbage"
    try lines.joined(separator: "\n").write(toFile: path, atomically: false, encoding: .utf8)
    do {
      _ = try IncidentManager(dataDirectory: scratch.path)
      Issue.record("a log with a bad middle line was accepted")
    } catch {
      #expect(error.message.contains("\(path) line 2 "), "\(error.message)")
    }
    #expect(throws: IncidentError.self) { _ = try IncidentLog(dataDirectory: scratch.path).read() }
    // An empty line in the middle is as bad as a garbled one.
    lines[1] = ""
    try lines.joined(separator: "\n").write(toFile: path, atomically: false, encoding: .utf8)
    #expect(throws: IncidentError.self) { _ = try IncidentManager(dataDirectory: scratch.path) }
  }

  @Test func theLogIsCreatedOwnerOnlyAndNeverThroughASymlink() throws {
    let scratch = try ScratchDirectory()
    let manager = try IncidentManager(dataDirectory: scratch.path)
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "ONE", declaredBy: "x"))
    let path = scratch.path + "/incidents.jsonl"
    #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)

    let other = try ScratchDirectory()
    let victim = other.file("victim")
    try "untouched".write(toFile: victim, atomically: false, encoding: .utf8)
    try FileManager.default.createSymbolicLink(atPath: other.file("incidents.jsonl"), withDestinationPath: victim)
    let planted = try IncidentManager(dataDirectory: other.path)
    #expect(throws: IncidentError.self) {
      _ = try planted.start(IncidentStartRequest(reason: "r", id: "ONE", declaredBy: "x"))
    }
    #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
  }

  @Test func activeIncidentsAndTTLsAreBounded() throws {
    let scratch = try ScratchDirectory()
    let manager = try IncidentManager(
      dataDirectory: scratch.path, maxActiveIncidents: 2, maxTTLNanos: 3600 * 1_000_000_000)
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "A", declaredBy: "x"))
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "B", declaredBy: "x", ttlNanos: 3600 * 1_000_000_000))
    do {
      _ = try manager.start(IncidentStartRequest(reason: "r", id: "C", declaredBy: "x"))
      Issue.record("a third active incident was accepted")
    } catch {
      #expect(error.kind == .conflict && error.message.contains("incidents.max-active"))
    }
    // An ended incident no longer counts.
    _ = try manager.stop(id: "A", by: "x")
    _ = try manager.start(IncidentStartRequest(reason: "r", id: "C", declaredBy: "x"))
    _ = try manager.stop(id: "C", by: "x")
    do {
      _ = try manager.start(IncidentStartRequest(reason: "r", id: "D", declaredBy: "x", ttlNanos: 3601 * 1_000_000_000))
      Issue.record("a TTL above the bound was accepted")
    } catch {
      #expect(error.kind == .invalid && error.message.contains("1h") && error.message.contains("incidents.max-ttl"))
    }
    #expect(manager.list().map(\.id) == ["A", "B", "C"])
    // The documented defaults.
    #expect(IncidentManager.defaultMaxActiveIncidents == 64)
    #expect(IncidentManager.defaultMaxTTLNanos == 7 * 24 * 3600 * 1_000_000_000)
    #expect(CaptureConfiguration().maxActiveIncidents == 64)
    #expect(CaptureConfiguration().maxIncidentTTLSeconds == 7 * 24 * 3600)
  }
}
