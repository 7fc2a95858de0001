import Audit
import Manifest
public import Verify

/// The HTML report of one verification: a single self-contained page (no script, no external
/// reference of any kind, a content security policy that forbids fetching) an auditor can open
/// in a browser or print.
///
/// A verified bundle's report shows its identity, signers, redaction policy, chain of custody,
/// streams and records-over-time charts. A rejected bundle's report shows the rejection and its
/// reason code, and nothing from the bundle's content: none of it can be relied on.
public enum EvidenceReport {
  /// The content security policy of every report: nothing may be fetched, framed or submitted;
  /// only the page's own inline style applies.
  public static let contentSecurityPolicy =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

  /// The report page for `result`. Deterministic: the same result and context give the same text.
  public static func html(for result: VerificationResult, context: ReportContext) -> String {
    var page = ReportPage()
    switch result {
    case .verified(let bundle):
      page.head(title: "Evidence report: incident \(bundle.manifest.incident.id), verified")
      VerifiedSections(bundle: bundle, context: context).write(to: &page)
    case .rejected(let finding):
      page.head(title: "Evidence report: bundle REJECTED (\(finding.code.rawValue))")
      RejectedSections(finding: finding, context: context).write(to: &page)
    }
    page.footer(context: context)
    return page.text
  }
}

/// The page being written. Every `add…` that takes a plain `String` escapes it.
struct ReportPage {
  private(set) var text = ""

  mutating func raw(_ markup: String) { text += markup }

  mutating func head(title: String) {
    raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
    raw("<meta http-equiv=\"Content-Security-Policy\" content=\"\(EvidenceReport.contentSecurityPolicy)\">\n")
    raw("<meta name=\"referrer\" content=\"no-referrer\">\n")
    raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
    raw("<title>\(HTMLText.escaped(title))</title>\n<style>\(ReportStyle.css)</style>\n</head>\n<body>\n<main>\n")
    raw("<h1>\(HTMLText.escaped(title))</h1>\n")
  }

  mutating func footer(context: ReportContext) {
    raw("<footer>Written by \(HTMLText.escaped("\(ToolInfo.current.name) \(ToolInfo.current.version)")) report")
    if let generatedAt = context.generatedAt { raw(" at \(HTMLText.escaped(generatedAt))") }
    raw(". This page runs no script and loads nothing; it is a rendering, and the bundle is the evidence.</footer>\n")
    raw("</main>\n</body>\n</html>\n")
  }

  mutating func section(_ id: String, _ heading: String, _ body: (inout ReportPage) -> Void) {
    raw("<section id=\"\(id)\">\n<h2>\(HTMLText.escaped(heading))</h2>\n")
    body(&self)
    raw("</section>\n")
  }

  mutating func paragraph(_ text: String, class styleClass: String? = nil) {
    raw(styleClass.map { "<p class=\"\($0)\">" } ?? "<p>")
    raw(HTMLText.escaped(text) + "</p>\n")
  }

  /// A two-column table of facts; values are escaped, and shown in monospace when `code`.
  mutating func facts(_ rows: [(label: String, value: String, code: Bool)], id: String) {
    raw("<table class=\"facts\" id=\"\(id)\">\n")
    for row in rows {
      let value = HTMLText.escaped(row.value)
      raw(
        "<tr><th scope=\"row\">\(HTMLText.escaped(row.label))</th><td>\(row.code ? "<code>\(value)</code>" : value)</td></tr>\n"
      )
    }
    raw("</table>\n")
  }

  /// A table with a header row; every cell is escaped. `rowClasses` gives an optional class per row.
  mutating func table(id: String, headers: [String], rows: [[String]], rowClasses: [String?] = []) {
    raw("<table class=\"grid\" id=\"\(id)\">\n<thead><tr>")
    for header in headers { raw("<th scope=\"col\">\(HTMLText.escaped(header))</th>") }
    raw("</tr></thead>\n<tbody>\n")
    for (index, row) in rows.enumerated() {
      let rowClass = index < rowClasses.count ? rowClasses[index] : nil
      raw(rowClass.map { "<tr class=\"\($0)\">" } ?? "<tr>")
      for cell in row { raw("<td>\(HTMLText.escaped(cell))</td>") }
      raw("</tr>\n")
    }
    raw("</tbody>\n</table>\n")
  }

  mutating func commandBlock(id: String, _ command: String) {
    raw("<pre class=\"command\" id=\"\(id)\"><code>\(HTMLText.escaped(command))</code></pre>\n")
  }
}

extension ReportPage {
  /// The section every report ends with: how to check the bundle without this report.
  mutating func reverification(_ commands: ReverifyCommands) {
    section("reverify", "Check it yourself") { page in
      page.paragraph(
        "Run these where the bundle and the trusted public key files are. With this tool, every check of the bundle format (BUNDLE-FORMAT.md §9, exit 0 when verified, 1 when rejected):"
      )
      page.commandBlock(id: "cmd-tool", commands.tool)
      page.paragraph(
        "In bash, with OpenSSL 3 and coreutils only (python3 pulls two JSON fields): the Ed25519 signature over the DSSE pre-authentication encoding, and every blob's SHA-256 against the signed manifest (BUNDLE-FORMAT.md §11):"
      )
      page.commandBlock(id: "cmd-openssl", commands.openSSL)
      page.paragraph("With Python 3 and the cryptography package, the same signature and digest checks:")
      page.commandBlock(id: "cmd-python", commands.python)
      page.paragraph(
        "The OpenSSL and Python checks cover signatures and blob digests; canonical form, tar headers, segments, sequences, times and the audit hash chain need the full verifier.",
        class: "note")
    }
  }
}

/// The report of a rejected bundle: the verdict and how to reproduce it, nothing from the content.
struct RejectedSections {
  let finding: Finding
  let context: ReportContext

  func write(to page: inout ReportPage) {
    page.raw("<section id=\"verdict\" class=\"verdict rejected\" data-verdict=\"rejected\">\n")
    page.raw("<p class=\"verdict-word\">REJECTED</p>\n")
    page.raw("<p class=\"reason\">Reason code <code id=\"reason-code\">\(finding.code.rawValue)</code></p>\n")
    page.raw("<p class=\"detail\" id=\"reason-detail\">\(HTMLText.escaped(finding.detail))</p>\n")
    page.paragraph(
      "Verification stopped at this first failing check (BUNDLE-FORMAT.md §9, §12). The bundle is not what its trusted signers signed, or no trusted key vouches for it: its incident facts, streams and custody records cannot be relied on, so this report shows none of them."
    )
    page.raw("</section>\n")
    page.section("checked", "What was checked") { page in
      page.facts(
        [
          ("Bundle file", context.bundleFileName, true),
          ("Verification", "deep: structure, signatures, manifest, every blob, segment and record", false),
          ("Trusted keys", context.trustedKeys.map(\.keyID).joined(separator: "\n"), true),
          ("Threshold", "\(context.threshold) distinct trusted key(s)", false),
        ], id: "checked-facts")
    }
    page.reverification(
      ReverifyCommands(
        bundle: context.bundleFileName, trustedKeyFiles: context.trustedKeys.map(\.fileName),
        signingKeyFiles: context.trustedKeys.map(\.fileName), threshold: context.threshold,
        ignoresUntrustedSignatures: context.ignoresUntrustedSignatures, manifestSHA256: nil))
  }
}
