/// The report's only style sheet, inline: system fonts (nothing to fetch), readable on screen,
/// and a print layout that keeps the verdict's colours and avoids splitting rows and charts.
enum ReportStyle {
  static let css = """
    :root{color-scheme:light;--ink:#1b1f24;--muted:#57606a;--line:#d0d7de;--ok:#1a7f37;--bad:#cf222e;\
    --traces:#0969da;--logs:#1a7f37;--metrics:#bc4c00}
    *{box-sizing:border-box}
    body{margin:0;background:#f6f8fa;color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",\
    "DejaVu Sans",sans-serif}
    main{max-width:1180px;margin:0 auto;padding:24px;background:#fff}
    h1{font-size:1.5em;margin:0 0 16px;overflow-wrap:anywhere}
    h2{font-size:1.15em;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
    code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em}
    code{overflow-wrap:anywhere}
    .verdict{border:3px solid;border-radius:6px;padding:12px 18px;margin:12px 0 20px}
    .verdict.verified{border-color:var(--ok);background:#dafbe1}
    .verdict.rejected{border-color:var(--bad);background:#ffebe9}
    .verdict-word{font-size:2em;font-weight:700;letter-spacing:.08em;margin:0}
    .verified .verdict-word{color:var(--ok)}
    .rejected .verdict-word{color:var(--bad)}
    .reason{font-size:1.3em;margin:6px 0}
    .reason code{font-size:1em;font-weight:700;color:var(--bad)}
    .detail{font-family:ui-monospace,"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}
    table{border-collapse:collapse;width:100%;margin:8px 0}
    th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
    thead th{background:#f6f8fa}
    table.facts th{width:14em;background:#f6f8fa;font-weight:600}
    td{white-space:pre-wrap}
    tr.incident-event td{background:#fff8c5;font-weight:600}
    tr.untrusted td,tr.unreadable td{color:var(--bad)}
    .note{color:var(--muted);font-size:.92em}
    pre.command{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:10px;\
    white-space:pre-wrap;overflow-wrap:anywhere}
    figure{margin:10px 0 18px}
    figcaption{font-weight:600}
    svg.chart{width:100%;height:auto;max-width:720px;display:block}
    svg .axis{stroke:var(--muted);stroke-width:1}
    svg .grid{stroke:var(--line);stroke-dasharray:4 3}
    svg .tick,svg .empty{font-size:11px;fill:var(--muted);font-family:system-ui,sans-serif}
    svg .signal-traces{fill:var(--traces)}
    svg .signal-logs{fill:var(--logs)}
    svg .signal-metrics{fill:var(--metrics)}
    footer{margin-top:32px;color:var(--muted);font-size:.85em}
    @media print{
    body{background:#fff;font-size:10.5pt}
    main{max-width:none;padding:0}
    .verdict,tr,figure,pre{break-inside:avoid}
    h2{break-after:avoid}
    *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
    }
    """
}
