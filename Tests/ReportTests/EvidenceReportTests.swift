import Audit
import EvidenceIO
import Foundation
import Keys
import Manifest
import Seal
import Signing
import Testing
import Verify
import WireTestSupport

@testable import Report

/// Bundles for report tests, built and verified for real in a temporary directory: a report is
/// only ever rendered from what ``BundleVerifier`` returned.
final class ReportLab {
  let directory: String
  let signer = Ed25519PrivateKey.generate()
  static let hostileTenant = "<script>alert('tenant')</script>"
  static let hostileNode = "node\"><img src=x onerror=alert(1)>"
  static let incidentID = "INC-<b>7</b>"
  static let second: UInt64 = 1_000_000_000
  static let start: UInt64 = 1_780_000_000 * second

  init() throws {
    directory = NSTemporaryDirectory() + "report-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: directory) }

  func path(_ name: String) -> String { directory + "/" + name }

  /// Two tenants, two signals, two nodes, and an audit stream with the incident's start and stop
  /// (the stop carrying a hostile note).
  func segments(receivedUnixNano: UInt64? = nil) throws -> [SealedSegment] {
    let start = Self.start
    let second = Self.second
    let traces = SegmentHeader(signal: .traces, tenant: "acme", node: "node-a")
    let logs = SegmentHeader(signal: .logs, tenant: Self.hostileTenant, node: Self.hostileNode)
    var audit: [SegmentRecord] = []
    var previous = AuditStream.genesisSHA256
    for (seq, (action, note)) in [
      ("incident.start", "declared by <i>ops</i>"), ("incident.stop", "</td><script>x()</script>"),
    ]
    .enumerated() {
      let record = AuditRecord(
        action: action, request: "POST /v1/incidents", principal: "alice", peer: "127.0.0.1:4000", result: .done,
        status: 200, note: note, incidentID: Self.incidentID, timeUnixNano: start + UInt64(seq) * 30 * second,
        previousSHA256: previous)
      let request = try record.serializedRequest(node: "node-a")
      previous = AuditStream.chainHash(ofRequest: request)
      audit.append(
        SegmentRecord(seq: UInt64(seq), receivedUnixNano: start + UInt64(seq) * 30 * second, request: request))
    }
    return [
      try SegmentSealer.seal(
        header: traces,
        records: (0..<10).map { index in
          let time = start + UInt64(index) * second
          return SegmentRecord(
            seq: UInt64(index), receivedUnixNano: receivedUnixNano ?? time, request: Wire.traces([(time, time + 5)]))
        }),
      try SegmentSealer.seal(
        header: logs,
        records: [
          SegmentRecord(
            seq: 0, receivedUnixNano: receivedUnixNano ?? start + 20 * second,
            request: Wire.logs([(start + 20 * second, 0)]))
        ]),
      try SegmentSealer.seal(
        header: SegmentHeader(signal: .logs, tenant: AuditStream.tenant, node: "node-a"), records: audit),
    ]
  }

  func seal(_ name: String, receivedUnixNano: UInt64? = nil) throws -> String {
    let facts = BundleFacts(
      incident: IncidentFacts(
        id: Self.incidentID, reason: "exfiltration <suspected>", declaredBy: "alice", declaredAtUnixNano: Self.start),
      captureStartUnixNano: Self.start, captureEndUnixNano: Self.start + 60 * Self.second,
      redactionPolicy: RedactionPolicyReference(id: "pii-v1", sha256: String(repeating: "ab", count: 32)),
      tool: .current)
    try BundleSealer.seal(
      segments: try segments(receivedUnixNano: receivedUnixNano), facts: facts, signingKeys: [signer],
      outputPath: path(name))
    return path(name)
  }

  func verify(_ path: String, receiveTimeLimit: Int = 1000) throws -> VerificationResult {
    var verifier = BundleVerifier(policy: try TrustPolicy(trustedKeys: [signer.publicKey]), depth: .deep)
    verifier.receiveTimeLimit = receiveTimeLimit
    return try verifier.verify(path: path)
  }

  var context: ReportContext {
    ReportContext(
      bundleFileName: "incident.sfb.tar",
      trustedKeys: [ReportContext.TrustedKey(keyID: signer.publicKey.keyID, fileName: "signer.pub")])
  }
}

/// The text between `<tag` and the matching `</tag>` of the element with `id`, or "" without one.
func element(_ id: String, in html: String) -> String {
  guard let start = html.range(of: "id=\"\(id)\"") else { return "" }
  guard let tagStart = html[..<start.lowerBound].range(of: "<", options: .backwards) else { return "" }
  let tag = html[html.index(after: tagStart.lowerBound)...].prefix { $0.isLetter || $0.isNumber }
  guard let end = html.range(of: "</\(tag)>", range: start.upperBound..<html.endIndex) else { return "" }
  return String(html[tagStart.lowerBound..<end.upperBound])
}

@Suite struct EvidenceReportTests {
  @Test func hostileStringsFromTheBundleAreEscapedEverywhere() throws {
    let lab = try ReportLab()
    let html = EvidenceReport.html(for: try lab.verify(try lab.seal("a.sfb.tar")), context: lab.context)
    // The only markup is the report's own: no script, no image, no event handler from the bundle.
    #expect(html.range(of: "<script", options: .caseInsensitive) == nil)
    #expect(html.range(of: "<img", options: .caseInsensitive) == nil)
    #expect(html.range(of: "<b>7", options: .caseInsensitive) == nil)
    #expect(html.range(of: "<i>ops", options: .caseInsensitive) == nil)
    #expect(html.contains("&lt;script&gt;alert(&#39;tenant&#39;)&lt;/script&gt;"))
    #expect(html.contains("node&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"))
    #expect(html.contains("INC-&lt;b&gt;7&lt;/b&gt;"))
    #expect(html.contains("note: &lt;/td&gt;&lt;script&gt;x()&lt;/script&gt;"))
    #expect(html.contains("exfiltration &lt;suspected&gt;"))
  }

  @Test func escapingCoversMarkupQuotesAndInvisibleCharacters() {
    #expect(HTMLText.escaped("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d&quot;e&#39;f")
    // A right-to-left override would reorder the text after it on screen; a NUL would vanish.
    #expect(HTMLText.escaped("x\u{202E}y\u{0}z\u{85}") == "x\\u{202e}y\\u{0}z\\u{85}")
    #expect(HTMLText.escaped("tenant-é ünïcode") == "tenant-é ünïcode")
    #expect(HTMLText.shellQuoted("bundle.sfb.tar") == "bundle.sfb.tar")
    #expect(HTMLText.shellQuoted("it's $(rm -rf x).tar") == "'it'\\''s $(rm -rf x).tar'")
  }

  @Test func verifiedReportShowsVerdictIdentityStreamsCustodyAndSigners() throws {
    let lab = try ReportLab()
    let result = try lab.verify(try lab.seal("a.sfb.tar"))
    guard case .verified(let bundle) = result else {
      Issue.record("the lab bundle did not verify: \(result)")
      return
    }
    let html = EvidenceReport.html(for: result, context: lab.context)
    #expect(element("verdict", in: html).contains("VERIFIED"))
    #expect(!html.contains("REJECTED"))
    #expect(element("identity-facts", in: html).contains(bundle.manifestSHA256))
    #expect(html.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"))

    let streams = element("stream-table", in: html)
    #expect(streams.contains("<td>node-a</td><td>traces</td><td>acme</td><td>1</td><td>10</td><td>0–9</td>"))
    #expect(
      streams.contains(
        "<td>logs</td><td>&lt;script&gt;alert(&#39;tenant&#39;)&lt;/script&gt;</td><td>1</td><td>1</td><td>0–0</td>"))
    #expect(streams.contains("<td>stella-forensics:audit</td><td>1</td><td>2</td><td>0–1</td>"))

    let milestones = element("custody-milestones", in: html)
    #expect(milestones.contains("Declared (incident.start done) by alice at 2026-05-28T20:26:40Z on node node-a"))
    #expect(milestones.contains("Stopped (incident.stop done) by alice at 2026-05-28T20:27:10Z"))
    #expect(element("custody-table", in: html).components(separatedBy: "<tr class=\"incident-event\">").count == 3)

    let signers = element("signer-table", in: html)
    #expect(
      signers.contains("<td>\(lab.signer.publicKey.keyID)</td><td>signer.pub</td><td>trusted; signature verified</td>"))
    #expect(element("redaction-facts", in: html).contains("pii-v1"))
    #expect(
      element("cmd-tool", in: html).contains("stella-forensics verify --deep --trusted-key signer.pub incident.sfb.tar")
    )
    #expect(element("cmd-openssl", in: html).contains("openssl pkeyutl -verify -pubin -inkey"))
    #expect(element("cmd-openssl", in: html).contains(bundle.manifestSHA256))
    #expect(element("cmd-python", in: html).contains("key.verify(signatures[keyid], pae)"))
  }

  @Test func sameVerificationGivesTheSameBytesAndGenerationTimeOnlyWhenGiven() throws {
    let lab = try ReportLab()
    let path = try lab.seal("a.sfb.tar")
    let first = EvidenceReport.html(for: try lab.verify(path), context: lab.context)
    let second = EvidenceReport.html(for: try lab.verify(path), context: lab.context)
    #expect(first == second)
    #expect(!first.contains(" report at "))
    var stamped = lab.context
    stamped.generatedAt = "2026-12-03T18:00:00Z"
    #expect(EvidenceReport.html(for: try lab.verify(path), context: stamped).contains("report at 2026-12-03T18:00:00Z"))
  }

  @Test func reportLoadsNothing() throws {
    let lab = try ReportLab()
    let html = EvidenceReport.html(for: try lab.verify(try lab.seal("a.sfb.tar")), context: lab.context)
    for forbidden in [
      " src=\"", " href=\"", "url(", "@import", "<link", "<iframe", "<object", "<embed", "<script",
    ] {
      #expect(html.range(of: forbidden, options: .caseInsensitive) == nil, "report holds \(forbidden)")
    }
    // The SVG namespace is an identifier, never fetched; it is the only URL in the page.
    let urls = html.components(separatedBy: "http").count - 1
    let namespaces = html.components(separatedBy: "xmlns=\"http://www.w3.org/2000/svg\"").count - 1
    #expect(urls == namespaces + 1)  // plus the CSP's http-equiv
  }

  @Test func rejectedReportShowsTheCodeAndNothingFromTheContent() throws {
    let lab = try ReportLab()
    let path = try lab.seal("a.sfb.tar")
    guard case .verified(let original) = try lab.verify(path), let blob = original.manifest.blobs.first,
      let member = original.blobMembers[blob.path]
    else {
      Issue.record("the lab bundle did not verify")
      return
    }
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[member.dataOffset + member.size / 2] ^= 0x01
    let tampered = lab.path("tampered.sfb.tar")
    try Data(bytes).write(to: URL(fileURLWithPath: tampered))
    let result = try lab.verify(tampered)
    guard case .rejected(let finding) = result else {
      Issue.record("a flipped blob byte was not rejected")
      return
    }
    let html = EvidenceReport.html(for: result, context: lab.context)
    #expect(element("verdict", in: html).contains("REJECTED"))
    #expect(element("reason-code", in: html).contains(finding.code.rawValue))
    #expect(html.contains("<title>Evidence report: bundle REJECTED (\(finding.code.rawValue))</title>"))
    #expect(!html.contains("VERIFIED"))
    for content in ["INC-", "acme", "node-a", "alice", "pii-v1", "stream-table", "custody-table", "<svg"] {
      #expect(!html.contains(content), "a rejected report shows \(content)")
    }
    #expect(element("cmd-tool", in: html).contains("verify --deep"))
  }

  @Test func chartsCountEveryRecordByReceiveTime() throws {
    let lab = try ReportLab()
    guard case .verified(let bundle) = try lab.verify(try lab.seal("a.sfb.tar")) else {
      Issue.record("the lab bundle did not verify")
      return
    }
    let charts = RecordCharts(manifest: bundle.manifest, receiveTimes: bundle.receiveTimes, maxBins: 31)
    #expect(charts.basis == .receiveTimes)
    #expect(charts.axis?.start == ReportLab.start)
    #expect(charts.axis?.end == ReportLab.start + 30 * ReportLab.second)
    #expect(
      charts.series.map { "\($0.signal.rawValue)/\($0.tenant)=\($0.histogram.total)" } == [
        "traces/acme=10", "logs/\(ReportLab.hostileTenant)=1", "logs/stella-forensics:audit=2",
      ])
    // Ten traces one second apart on a 30-second axis of 31 bins: one in each of the first ten.
    #expect(charts.series[0].histogram.counts.prefix(10).allSatisfy { $0 == 1 })
    #expect(charts.series[0].histogram.counts.count == 31)
  }

  @Test func chartsFallBackToSegmentTimesWithoutReceiveTimes() throws {
    let lab = try ReportLab()
    let imported = try lab.seal("imported.sfb.tar", receivedUnixNano: 0)
    guard case .verified(let bundle) = try lab.verify(imported) else {
      Issue.record("the lab bundle did not verify")
      return
    }
    let charts = RecordCharts(manifest: bundle.manifest, receiveTimes: bundle.receiveTimes, maxBins: 48)
    guard case .segmentTimeRanges = charts.basis else {
      Issue.record("records without receive times were charted by receive time")
      return
    }
    #expect(charts.series.map(\.histogram.total) == [10, 1, 2])
    let html = EvidenceReport.html(for: .verified(bundle), context: lab.context)
    #expect(element("charts", in: html).contains("some records have no receive time"))
  }

  @Test func verifierKeepsNoReceiveTimesOverItsLimit() throws {
    let lab = try ReportLab()
    let path = try lab.seal("a.sfb.tar")
    guard case .verified(let within) = try lab.verify(path, receiveTimeLimit: 13),
      case .verified(let over) = try lab.verify(path, receiveTimeLimit: 12),
      case .verified(let off) = try lab.verify(path, receiveTimeLimit: 0)
    else {
      Issue.record("the lab bundle did not verify")
      return
    }
    #expect(within.receiveTimes?.values.map(\.count).reduce(0, +) == 13)
    #expect(over.receiveTimes == nil)
    #expect(off.receiveTimes == nil)
    #expect(within.custodyTimeline?.count == 2)
  }
}

@Suite struct ChartTests {
  static let plotHeight = BarChartSVG.height - BarChartSVG.top - BarChartSVG.bottom

  /// The `height` attributes of the chart's bars, in order.
  func barHeights(_ svg: String) -> [Int] {
    svg.components(separatedBy: "<rect class=\"bar").dropFirst().compactMap { rect in
      guard let range = rect.range(of: "height=\"") else { return nil }
      return Int(rect[range.upperBound...].prefix { $0.isNumber })
    }
  }

  @Test func noPointsDrawsNoBarsAndSaysSo() {
    let axis = TimeAxis(start: 500, end: 500, maxBins: 48)
    let svg = BarChartSVG.render(RecordHistogram(axis: axis), axis: axis, title: "empty", styleClass: "signal-logs")
    #expect(barHeights(svg).isEmpty)
    #expect(svg.contains(">no records</text>"))
  }

  @Test func onePointFillsTheOnlyBin() {
    let axis = TimeAxis(start: 500, end: 500, maxBins: 48)
    #expect(axis.binCount == 1)
    var histogram = RecordHistogram(axis: axis)
    histogram.add(times: [500], axis: axis)
    let svg = BarChartSVG.render(histogram, axis: axis, title: "one", styleClass: "signal-logs")
    #expect(barHeights(svg) == [Self.plotHeight])
    #expect(svg.contains("<title>1 record(s) from 1970-01-01T00:00:00.000000500Z</title>"))
  }

  @Test func manyPointsScaleToThePeakAndKeepSmallBarsVisible() {
    let axis = TimeAxis(start: 0, end: 99, maxBins: 10)
    #expect(axis.binCount == 10 && axis.binWidth == 10)
    var histogram = RecordHistogram(axis: axis)
    histogram.add(times: Array(repeating: 5, count: 1000) + Array(repeating: 55, count: 500) + [99], axis: axis)
    #expect(histogram.counts == [1000, 0, 0, 0, 0, 500, 0, 0, 0, 1])
    let svg = BarChartSVG.render(histogram, axis: axis, title: "many", styleClass: "signal-traces")
    #expect(barHeights(svg) == [Self.plotHeight, Self.plotHeight / 2, 1])
    #expect(svg.contains(">1000</text>"))
  }

  @Test func axisNeverHasMoreBinsThanNanosecondsAndCoversItsEnd() {
    #expect(TimeAxis(start: 10, end: 13, maxBins: 48).binCount == 4)
    let wide = TimeAxis(start: 0, end: UInt64.max, maxBins: 48)
    #expect(wide.binCount == 48)
    #expect(wide.bin(of: UInt64.max) == 47)
    #expect(wide.bin(of: 0) == 0)
  }

  @Test func spreadingASegmentKeepsItsTotalExact() {
    let axis = TimeAxis(start: 0, end: 999, maxBins: 10)
    var histogram = RecordHistogram(axis: axis)
    histogram.add(count: 7, spreadFrom: 250, to: 549, axis: axis)
    #expect(histogram.counts == [0, 0, 2, 2, 2, 1, 0, 0, 0, 0])
    histogram.add(count: 3, spreadFrom: 999, to: 999, axis: axis)
    #expect(histogram.total == 10)
  }
}
