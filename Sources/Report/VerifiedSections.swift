import Audit
import Manifest
import Verify

/// The records-over-time charts: one histogram per (signal, tenant), over all nodes, on one
/// shared time axis.
struct RecordCharts {
  /// What the charts place records by.
  enum Basis: Equatable {
    /// Each record's `receivedUnixNano`, read by deep verification.
    case receiveTimes
    /// Each segment's item-time range from the signed manifest, its records spread evenly.
    case segmentTimeRanges(reason: String)
  }

  struct Series: Equatable {
    var signal: Signal
    var tenant: String
    var histogram: RecordHistogram
  }

  var basis: Basis
  var axis: TimeAxis?
  var series: [Series]
  /// Records no chart can place: segments without any item time.
  var undatedRecords: UInt64 = 0

  init(manifest: BundleManifest, receiveTimes: [StreamKey: [UInt64]]?, maxBins: Int) {
    var groups: [String: (signal: Signal, tenant: String)] = [:]
    func groupKey(_ stream: StreamKey) -> String { "\(stream.signal.code)/\(stream.tenant)" }
    for blob in manifest.blobs { groups[groupKey(blob.stream)] = (blob.signal, blob.tenant) }
    let ordered = groups.values.sorted {
      ($0.signal.code, Array($0.tenant.utf8)) < ($1.signal.code, Array($1.tenant.utf8))
    }

    if let receiveTimes, !receiveTimes.isEmpty, receiveTimes.values.allSatisfy({ $0.allSatisfy { $0 > 0 } }) {
      basis = .receiveTimes
      let all = receiveTimes.values.lazy.flatMap { $0 }
      guard let first = all.min(), let last = all.max() else {
        axis = nil
        series = []
        return
      }
      let axis = TimeAxis(start: first, end: last, maxBins: maxBins)
      self.axis = axis
      series = ordered.map { group in
        var histogram = RecordHistogram(axis: axis)
        for (stream, times) in receiveTimes where stream.signal == group.signal && stream.tenant == group.tenant {
          histogram.add(times: times, axis: axis)
        }
        return Series(signal: group.signal, tenant: group.tenant, histogram: histogram)
      }
      return
    }

    basis = .segmentTimeRanges(
      reason: receiveTimes == nil
        ? "record receive times were not read"
        : "some records have no receive time (imported from files)")
    let dated = manifest.blobs.filter { !($0.firstTimeUnixNano == 0 && $0.lastTimeUnixNano == 0) }
    undatedRecords = manifest.blobs.reduce(0) { $0 + $1.recordCount } - dated.reduce(0) { $0 + $1.recordCount }
    guard let first = dated.map(\.firstTimeUnixNano).min(), let last = dated.map(\.lastTimeUnixNano).max() else {
      axis = nil
      series = []
      return
    }
    let axis = TimeAxis(start: first, end: last, maxBins: maxBins)
    self.axis = axis
    series = ordered.map { group in
      var histogram = RecordHistogram(axis: axis)
      for blob in dated where blob.signal == group.signal && blob.tenant == group.tenant {
        histogram.add(
          count: blob.recordCount, spreadFrom: blob.firstTimeUnixNano, to: blob.lastTimeUnixNano, axis: axis)
      }
      return Series(signal: group.signal, tenant: group.tenant, histogram: histogram)
    }
  }
}

private func < (lhs: (UInt8, [UInt8]), rhs: (UInt8, [UInt8])) -> Bool {
  lhs.0 != rhs.0 ? lhs.0 < rhs.0 : lhs.1.lexicographicallyPrecedes(rhs.1)
}

/// The report of a verified bundle.
struct VerifiedSections {
  let bundle: VerifiedBundle
  let context: ReportContext

  private var manifest: BundleManifest { bundle.manifest }

  func write(to page: inout ReportPage) {
    writeVerdict(to: &page)
    writeIdentity(to: &page)
    writeSigners(to: &page)
    writeCustody(to: &page)
    writeStreams(to: &page)
    writeCharts(to: &page)
    writeRedaction(to: &page)
    let keyFiles = Dictionary(
      context.trustedKeys.map { ($0.keyID, $0.fileName) }, uniquingKeysWith: { first, _ in first })
    page.reverification(
      ReverifyCommands(
        bundle: context.bundleFileName, trustedKeyFiles: context.trustedKeys.map(\.fileName),
        signingKeyFiles: bundle.signerKeyIDs.compactMap { keyFiles[$0] }, threshold: context.threshold,
        ignoresUntrustedSignatures: context.ignoresUntrustedSignatures, manifestSHA256: bundle.manifestSHA256))
  }

  private func writeVerdict(to page: inout ReportPage) {
    page.raw("<section id=\"verdict\" class=\"verdict verified\" data-verdict=\"verified\">\n")
    page.raw("<p class=\"verdict-word\">VERIFIED</p>\n")
    let depth =
      bundle.isDeep
      ? "every check of the bundle format passed: structure, signatures, the signed manifest, and every blob, segment, record, sequence, time and the audit hash chain (deep verification)"
      : "the structure, signatures, signed manifest and every blob's size and digest checked; segments were NOT decompressed (quick verification)"
    page.paragraph(
      "Signed by \(bundle.signerKeyIDs.count) trusted key(s), threshold \(context.threshold); \(depth).")
    page.raw("</section>\n")
  }

  private func writeIdentity(to page: inout ReportPage) {
    page.section("identity", "Bundle") { page in
      page.facts(
        [
          ("Bundle file", context.bundleFileName, true),
          ("Manifest SHA-256", bundle.manifestSHA256, true),
          ("Incident", manifest.incident.id, true),
          ("Reason", manifest.incident.reason, false),
          ("Declared by", manifest.incident.declaredBy, false),
          ("Declared at", UTCTime.format(manifest.incident.declaredAtUnixNano), false),
          (
            "Capture window",
            "\(UTCTime.format(manifest.capture.startUnixNano)) to \(UTCTime.format(manifest.capture.endUnixNano)) (\(UTCTime.duration(manifest.capture.endUnixNano - manifest.capture.startUnixNano)))",
            false
          ),
          ("Capture nodes", manifest.capture.nodes.joined(separator: ", "), false),
          (
            "Contents",
            "\(bundle.streamCount) stream(s), \(manifest.blobs.count) blob(s), \(bundle.recordCount) record(s)", false
          ),
          ("Written by", "\(manifest.tool.name) \(manifest.tool.version)", false),
        ], id: "identity-facts")
    }
  }

  private func writeSigners(to page: inout ReportPage) {
    page.section("signers", "Signers") { page in
      let files = Dictionary(
        context.trustedKeys.map { ($0.keyID, $0.fileName) }, uniquingKeysWith: { first, _ in first })
      let signed = Set(bundle.signerKeyIDs)
      var rows: [[String]] = []
      var classes: [String?] = []
      for keyID in bundle.envelopeKeyIDs.isEmpty ? bundle.signerKeyIDs : bundle.envelopeKeyIDs {
        if signed.contains(keyID) {
          rows.append([keyID, files[keyID] ?? "", "trusted; signature verified"])
          classes.append("trusted")
        } else {
          rows.append([keyID, "", "NOT trusted; signature ignored, does not count"])
          classes.append("untrusted")
        }
      }
      for key in context.trustedKeys where !signed.contains(key.keyID) && !bundle.envelopeKeyIDs.contains(key.keyID) {
        rows.append([key.keyID, key.fileName, "trusted; did not sign"])
        classes.append("absent")
      }
      page.table(
        id: "signer-table", headers: ["Key id", "Trusted key file", "Status"], rows: rows, rowClasses: classes)
      page.paragraph(
        "A key id is the SHA-256 of the key's DER SubjectPublicKeyInfo: openssl pkey -pubin -in KEY.pub -outform DER | sha256sum. \(context.threshold) distinct trusted key(s) had to sign.",
        class: "note")
    }
  }

  private func writeRedaction(to page: inout ReportPage) {
    page.section("redaction", "Redaction policy") { page in
      let policy = manifest.redactionPolicy
      page.facts(
        [("Policy id", policy.id, true), ("Policy document SHA-256", policy.sha256, true)], id: "redaction-facts")
      if policy == .none {
        page.paragraph("No redaction was applied: the records are as the capture nodes received them.")
      } else {
        page.paragraph(
          "The capture nodes applied this policy before recording. The manifest pins the exact policy document by its SHA-256; compare it with your copy (sha256sum POLICY-FILE)."
        )
      }
    }
  }

  private func writeCustody(to page: inout ReportPage) {
    page.section("custody", "Chain of custody") { page in
      page.paragraph(
        "Declared by \(manifest.incident.declaredBy) at \(UTCTime.format(manifest.incident.declaredAtUnixNano)) (signed manifest)."
      )
      guard let timeline = bundle.custodyTimeline else {
        page.paragraph(
          "The audit stream was not read: this verification did not decompress segments.", class: "note")
        return
      }
      guard !timeline.isEmpty else {
        page.paragraph(
          "This bundle holds no audit stream, so the signed manifest's incident facts are its only custody record.",
          class: "note")
        return
      }
      let incidentActions: Set<String> = ["incident.start", "incident.stop", "incident.expire"]
      var milestones: [String] = []
      for event in timeline {
        guard case .success(let record) = event.record, incidentActions.contains(record.action),
          record.incidentID == manifest.incident.id
        else { continue }
        let verb =
          switch record.action {
          case "incident.start": "Declared"
          case "incident.stop": "Stopped"
          default: "Expired"
          }
        var line = "\(verb) (\(record.action) \(record.result.rawValue)) by \(record.principal ?? "(unauthenticated)")"
        line += " at \(UTCTime.format(record.timeUnixNano)) on node \(event.node)"
        if let note = record.note { line += "; note: \(note)" }
        milestones.append(line)
      }
      if !milestones.isEmpty {
        page.raw("<ul id=\"custody-milestones\">\n")
        for line in milestones { page.raw("<li>\(HTMLText.escaped(line))</li>\n") }
        page.raw("</ul>\n")
      }
      page.paragraph(
        "The audit timeline: every admin action and refusal the capture nodes recorded, in time order. Deep verification checked each node's hash chain from record to record.",
        class: "note")
      var rows: [[String]] = []
      var classes: [String?] = []
      for event in timeline {
        switch event.record {
        case .failure(let error):
          rows.append(["", "\(event.node) #\(event.seq)", "(not an audit record)", "", "", "", error.message])
          classes.append("unreadable")
        case .success(let record):
          var details: [String] = []
          if let request = record.request { details.append(request) }
          if !record.peer.isEmpty { details.append("from \(record.peer)") }
          if record.status != 0 { details.append("status \(record.status)") }
          if let reason = record.reason { details.append("reason: \(reason)") }
          if let note = record.note { details.append("note: \(note)") }
          if let identity = record.certificateIdentity { details.append("certificate: \(identity)") }
          if record.suppressedRefusals > 0 {
            details.append("\(record.suppressedRefusals) refusal(s) counted, not recorded")
          }
          rows.append([
            UTCTime.format(record.timeUnixNano), "\(event.node) #\(event.seq)", record.action, record.result.rawValue,
            record.principal ?? "(unauthenticated)", record.incidentID ?? "", details.joined(separator: "; "),
          ])
          classes.append(incidentActions.contains(record.action) ? "incident-event" : nil)
        }
      }
      page.table(
        id: "custody-table",
        headers: ["Time (UTC)", "Node #seq", "Action", "Result", "Principal", "Incident", "Details"],
        rows: rows, rowClasses: classes)
    }
  }

  private func writeStreams(to page: inout ReportPage) {
    page.section("streams", "Streams") { page in
      page.paragraph(
        "One row per stream (node, signal, tenant). Each stream's records are numbered without gaps from the first to the last seq shown; times are the earliest and latest item times in its records (span start, log time, data point time).",
        class: "note")
      var rows: [[String]] = []
      for row in StreamSummary.of(manifest) {
        var cells = [
          row.stream.node, row.stream.signal.rawValue, row.stream.tenant, String(row.blobs), String(row.records),
          "\(row.firstSeq)–\(row.lastSeq)",
          "\(UTCTime.format(row.firstTime)) to \(UTCTime.format(row.lastTime))",
        ]
        if let times = bundle.receiveTimes?[row.stream]?.filter({ $0 > 0 }), let first = times.min(),
          let last = times.max()
        {
          cells.append("\(UTCTime.format(first)) to \(UTCTime.format(last))")
        } else {
          cells.append("")
        }
        rows.append(cells)
      }
      page.table(
        id: "stream-table",
        headers: ["Node", "Signal", "Tenant", "Blobs", "Records", "Seq range", "Item time range", "Received"],
        rows: rows)
    }
  }

  private func writeCharts(to page: inout ReportPage) {
    page.section("charts", "Records over time") { page in
      let charts = RecordCharts(manifest: manifest, receiveTimes: bundle.receiveTimes, maxBins: context.maxChartBins)
      switch charts.basis {
      case .receiveTimes:
        page.paragraph(
          "Records per signal and tenant, all nodes together, by the time the capture node received them. Every chart shares one time axis.",
          class: "note")
      case .segmentTimeRanges(let reason):
        page.paragraph(
          "Records per signal and tenant, all nodes together, placed by each segment's item-time range from the signed manifest and spread evenly within it (\(reason)). Every chart shares one time axis.",
          class: "note")
      }
      if charts.undatedRecords > 0 {
        page.paragraph(
          "\(charts.undatedRecords) record(s) in segments without any item time are not charted.", class: "note")
      }
      guard let axis = charts.axis else {
        page.paragraph("No record has a time to chart.")
        return
      }
      for series in charts.series {
        let title = "\(series.signal.rawValue), tenant \(series.tenant): \(series.histogram.total) record(s)"
        page.raw("<figure class=\"chart-figure\">\n<figcaption>\(HTMLText.escaped(title))</figcaption>\n")
        page.raw(
          BarChartSVG.render(series.histogram, axis: axis, title: title, styleClass: "signal-\(series.signal.rawValue)")
        )
        page.raw("\n</figure>\n")
      }
    }
  }
}
