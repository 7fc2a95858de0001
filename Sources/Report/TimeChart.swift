/// A time range cut into equal bins, shared by every chart of a report so the charts line up.
struct TimeAxis: Equatable {
  /// The first instant, Unix nanoseconds.
  let start: UInt64
  /// The last instant (inclusive).
  let end: UInt64
  let binCount: Int
  /// Nanoseconds per bin; `binCount * binWidth` always covers `end`.
  let binWidth: UInt64

  /// An axis from `start` to `end` with at most `maxBins` bins (at least one, never more bins
  /// than nanoseconds in the range). `end` before `start` is read as the empty range at `start`.
  init(start: UInt64, end: UInt64, maxBins: Int) {
    let end = max(start, end)
    let span = end - start
    let bins = UInt64(max(1, maxBins))
    self.start = start
    self.end = end
    self.binCount = Int(span < bins ? span + 1 : bins)
    self.binWidth = span / UInt64(binCount) + 1
  }

  /// The bin holding `time`; times outside the axis fall in the first or last bin.
  func bin(of time: UInt64) -> Int {
    guard time > start else { return 0 }
    return min(binCount - 1, Int((time - start) / binWidth))
  }

  /// The first instant of bin `index`.
  func binStart(_ index: Int) -> UInt64 {
    let (offset, overflow) = binWidth.multipliedReportingOverflow(by: UInt64(index))
    if overflow { return end }
    let (instant, past) = start.addingReportingOverflow(offset)
    return past ? end : min(instant, end)
  }
}

/// Record counts per bin of a ``TimeAxis``.
struct RecordHistogram: Equatable {
  private(set) var counts: [UInt64]

  init(axis: TimeAxis) {
    counts = Array(repeating: 0, count: axis.binCount)
  }

  var total: UInt64 { counts.reduce(0, +) }

  /// Counts one record at each of `times`.
  mutating func add(times: [UInt64], axis: TimeAxis) {
    for time in times { counts[axis.bin(of: time)] += 1 }
  }

  /// Counts `count` records known only to lie between `first` and `last` (a segment's time range),
  /// spread evenly over the bins the range touches; whole records only, the remainder going to
  /// the earliest bins, so the histogram's total stays exact.
  mutating func add(count: UInt64, spreadFrom first: UInt64, to last: UInt64, axis: TimeAxis) {
    let firstBin = axis.bin(of: first)
    let lastBin = max(firstBin, axis.bin(of: last))
    let binsTouched = UInt64(lastBin - firstBin + 1)
    let share = count / binsTouched
    let remainder = count % binsTouched
    for (offset, bin) in (firstBin...lastBin).enumerated() {
      counts[bin] += share + (UInt64(offset) < remainder ? 1 : 0)
    }
  }
}

/// A histogram drawn as an inline SVG bar chart: fixed integer geometry, no script, no external
/// reference, so the same counts always give the same bytes.
enum BarChartSVG {
  static let width = 720
  static let height = 170
  static let left = 64
  static let right = 12
  static let top = 14
  static let bottom = 36

  /// The chart of `histogram` over `axis`. `title` is escaped here.
  /// - Parameter styleClass: the CSS class of the bars (one per signal).
  static func render(_ histogram: RecordHistogram, axis: TimeAxis, title: String, styleClass: String) -> String {
    let plotWidth = width - left - right
    let plotHeight = height - top - bottom
    let pitch = max(1, plotWidth / max(1, histogram.counts.count))
    let barWidth = pitch >= 4 ? pitch - 2 : pitch
    let peak = histogram.counts.max() ?? 0
    let baseline = top + plotHeight
    let escapedTitle = HTMLText.escaped(title)
    var svg =
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(escapedTitle)\">"
    svg += "<title>\(escapedTitle)</title>"
    svg +=
      "<line class=\"axis\" x1=\"\(left)\" y1=\"\(baseline)\" x2=\"\(left + pitch * histogram.counts.count)\" y2=\"\(baseline)\"/>"
    svg += "<line class=\"axis\" x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(baseline)\"/>"
    svg += "<text class=\"tick\" x=\"\(left - 6)\" y=\"\(baseline)\" text-anchor=\"end\">0</text>"
    if peak == 0 {
      svg +=
        "<text class=\"empty\" x=\"\(left + plotWidth / 2)\" y=\"\(top + plotHeight / 2)\" text-anchor=\"middle\">no records</text>"
    } else {
      svg += "<text class=\"tick\" x=\"\(left - 6)\" y=\"\(top + 10)\" text-anchor=\"end\">\(peak)</text>"
      svg +=
        "<line class=\"grid\" x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left + pitch * histogram.counts.count)\" y2=\"\(top)\"/>"
      for (index, count) in histogram.counts.enumerated() where count > 0 {
        let barHeight = barHeight(count: count, peak: peak, plotHeight: plotHeight)
        let binStart = UTCTime.format(axis.binStart(index))
        svg +=
          "<rect class=\"bar \(styleClass)\" x=\"\(left + index * pitch)\" y=\"\(baseline - barHeight)\" width=\"\(barWidth)\" height=\"\(barHeight)\"><title>\(count) record(s) from \(binStart)</title></rect>"
      }
    }
    svg +=
      "<text class=\"tick\" x=\"\(left)\" y=\"\(height - 14)\" text-anchor=\"start\">\(axisLabel(axis.start, axis: axis))</text>"
    svg +=
      "<text class=\"tick\" x=\"\(left + pitch * histogram.counts.count)\" y=\"\(height - 14)\" text-anchor=\"end\">\(axisLabel(axis.end, axis: axis))</text>"
    svg += "</svg>"
    return svg
  }

  /// An axis end's time: to the second, or in full when the whole axis spans less than a minute
  /// (otherwise both ends of a short capture would read the same).
  static func axisLabel(_ time: UInt64, axis: TimeAxis) -> String {
    axis.end - axis.start < 60_000_000_000 ? UTCTime.format(time) : UTCTime.formatShort(time)
  }

  /// The height of a bar, in whole units: proportional to `count / peak`, and at least 1 for a
  /// non-zero count so a single record next to a large peak still shows.
  static func barHeight(count: UInt64, peak: UInt64, plotHeight: Int) -> Int {
    guard peak > 0, count > 0 else { return 0 }
    let scaled = (Double(count) / Double(peak) * Double(plotHeight)).rounded()
    return max(1, min(plotHeight, Int(scaled)))
  }
}
