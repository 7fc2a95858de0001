import Foundation
import Testing

@testable import Incidents

/// One incident as several capture nodes' incident logs record it, for a bundle of their data
/// directories.
@Suite struct NodesIncidentTests {
  let second: UInt64 = 1_000_000_000

  func directory(_ scratch: ScratchDirectory, _ name: String, holding incidents: [Incident]) throws -> String {
    let path = scratch.file(name)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    for incident in incidents { try IncidentLog(dataDirectory: path).append(incident) }
    return path
  }

  func incident(
    _ id: String = "INC-7", reason: String = "exfiltration", declaredBy: String = "soc", start: UInt64,
    lookbackSeconds: UInt64 = 60, end: UInt64? = nil, tenants: [String] = []
  ) -> Incident {
    var incident = Incident(
      id: id, reason: reason, declaredBy: declaredBy, startUnixNano: start, lookbackNanos: lookbackSeconds * second,
      ttlNanos: nil, tenants: tenants)
    if let end {
      incident.state = .stopped
      incident.endUnixNano = end
    }
    return incident
  }

  @Test func oneLogGivesItsIncidentAsItIs() throws {
    let scratch = try ScratchDirectory()
    let a = try directory(scratch, "a", holding: [incident(start: 1_000 * second, end: 1_100 * second)])
    let found = try NodesIncident.find(id: "INC-7", in: [a])
    #expect(found.declaredAtUnixNano == 1_000 * second)
    #expect(found.windowStartUnixNano == 940 * second)
    #expect(found.endUnixNano == 1_100 * second)
    #expect(found.records.map(\.dataDirectory) == [a])
  }

  @Test func severalLogsJoinTheirTimes() throws {
    let scratch = try ScratchDirectory()
    let a = try directory(scratch, "a", holding: [incident(start: 1_000 * second, end: 1_100 * second)])
    let b = try directory(
      scratch, "b", holding: [incident(start: 1_002 * second, lookbackSeconds: 300, end: 1_105 * second)])
    let c = try directory(scratch, "c", holding: [incident("INC-other", start: 5 * second)])
    let found = try NodesIncident.find(id: "INC-7", in: [a, b, c])
    #expect(found.declaredAtUnixNano == 1_000 * second)
    #expect(found.windowStartUnixNano == 702 * second)
    #expect(found.endUnixNano == 1_105 * second)
    #expect(found.records.map(\.dataDirectory) == [a, b])
    let notified = NotifyEvent.Incident(found)
    #expect(notified.startedAtUnixNano == 1_000 * second && notified.stoppedAtUnixNano == 1_105 * second)
  }

  @Test func anIncidentActiveOnOneNodeIsActive() throws {
    let scratch = try ScratchDirectory()
    let a = try directory(scratch, "a", holding: [incident(start: 1_000 * second, end: 1_100 * second)])
    let b = try directory(scratch, "b", holding: [incident(start: 1_001 * second)])
    #expect(try NodesIncident.find(id: "INC-7", in: [a, b]).endUnixNano == nil)
  }

  @Test func differentCustodyFactsAreRefusedNamingTheFieldAndDirectories() throws {
    let scratch = try ScratchDirectory()
    let a = try directory(scratch, "a", holding: [incident(start: 1_000 * second)])
    let b = try directory(scratch, "b", holding: [incident(reason: "other", start: 1_000 * second)])
    let c = try directory(scratch, "c", holding: [incident(start: 1_000 * second, tenants: ["acme"])])
    #expect {
      try NodesIncident.find(id: "INC-7", in: [a, b])
    } throws: { error in
      guard let error = error as? IncidentError else { return false }
      return error.code == .conflict
        && error.message
          == "incident INC-7 has reason \"exfiltration\" in \(a) but \"other\" in \(b); a bundle states one, so bundle these directories separately"
    }
    #expect {
      try NodesIncident.find(id: "INC-7", in: [a, c])
    } throws: { error in
      (error as? IncidentError)?.message.hasPrefix(
        "incident INC-7 has tenants every tenant in \(a) but [acme] in \(c)") == true
    }
  }

  @Test func anIncidentInNoLogIsNotFoundListingTheKnownOnes() throws {
    let scratch = try ScratchDirectory()
    let a = try directory(scratch, "a", holding: [incident("INC-1", start: 1)])
    let b = try directory(scratch, "b", holding: [incident("INC-2", start: 1), incident("INC-1", start: 2)])
    #expect {
      try NodesIncident.find(id: "INC-7", in: [a, b])
    } throws: { error in
      guard let error = error as? IncidentError else { return false }
      return error.code == .notFound && error.message == "no incident INC-7 in \(a), \(b) (known: INC-1, INC-2)"
    }
  }
}
