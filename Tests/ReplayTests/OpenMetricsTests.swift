import Testing
import WireTestSupport

@testable import Replay

@Suite struct OpenMetricsTests {
  static func varintField(_ number: UInt64, _ value: UInt64) -> [UInt8] {
    Wire.varint(number << 3) + Wire.varint(value)
  }
  static func string(_ number: UInt64, _ text: String) -> [UInt8] { Wire.field(number, bytes: Array(text.utf8)) }
  static func attribute(_ key: String, _ value: String) -> [UInt8] {
    string(1, key) + Wire.field(2, bytes: string(1, value))
  }
  static func packed(_ values: [UInt64]) -> [UInt8] {
    values.flatMap { value in (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64($0 * 8)) } }
  }

  /// A request with a gauge, a monotonic cumulative sum (points out of time order, one timestamp
  /// twice) and a cumulative histogram, from service "shop".
  static func request() -> [UInt8] {
    let gaugePoint =
      Wire.field(7, bytes: attribute("queue.name", "in\"box")) + Wire.fixed64(3, 2_000_000_000)
      + Wire.fixed64(4, (1.5).bitPattern)
    let gauge =
      string(1, "queue.depth") + string(2, "Items\nwaiting") + Wire.field(5, bytes: Wire.field(1, bytes: gaugePoint))
    func sumPoint(_ time: UInt64, _ value: UInt64) -> [UInt8] {
      Wire.field(1, bytes: Wire.fixed64(3, time) + Wire.fixed64(6, value))
    }
    let sum =
      string(1, "http.requests")
      + Wire.field(
        7,
        bytes: sumPoint(3_000_000_000, 9) + sumPoint(1_000_000_000, 4) + sumPoint(3_000_000_000, 10)
          + varintField(2, 2) + varintField(3, 1))
    let histogramPoint =
      Wire.fixed64(3, 1_500_000_000) + Wire.fixed64(4, 6) + Wire.fixed64(5, (10.0).bitPattern)
      + Wire.field(6, bytes: packed([1, 2, 3])) + Wire.field(7, bytes: packed([(1.0).bitPattern, (5.0).bitPattern]))
    let histogram =
      string(1, "9latency-ms") + Wire.field(9, bytes: Wire.field(1, bytes: histogramPoint) + varintField(2, 2))
    let scope = Wire.field(2, bytes: gauge) + Wire.field(2, bytes: sum) + Wire.field(2, bytes: histogram)
    let resource = Wire.field(1, bytes: attribute("service.name", "shop"))
    return Wire.field(1, bytes: Wire.field(1, bytes: resource) + Wire.field(2, bytes: scope))
  }

  @Test func rendersGaugesCountersAndHistogramsPromtoolReads() throws {
    var renderer = OpenMetricsRenderer()
    try renderer.add(request: Self.request())
    let text = String(decoding: renderer.render(), as: UTF8.self)
    #expect(
      text == """
        # TYPE _9latency_ms histogram
        _9latency_ms_bucket{job="shop",le="1.0"} 1 1.5
        _9latency_ms_bucket{job="shop",le="5.0"} 3 1.5
        _9latency_ms_bucket{job="shop",le="+Inf"} 6 1.5
        _9latency_ms_sum{job="shop"} 10.0 1.5
        _9latency_ms_count{job="shop"} 6 1.5
        # TYPE http_requests counter
        http_requests_total{job="shop"} 4 1
        http_requests_total{job="shop"} 10 3
        # TYPE queue_depth gauge
        # HELP queue_depth Items\\nwaiting
        queue_depth{job="shop",queue_name="in\\"box"} 1.5 2
        # EOF

        """)
    #expect(renderer.renderedPoints == 5)
    #expect(renderer.skippedPoints == 0)
  }

  @Test func renderingIsDeterministicWhateverTheInputOrder() throws {
    var once = OpenMetricsRenderer()
    try once.add(request: Self.request())
    var twice = OpenMetricsRenderer()
    try twice.add(request: Self.request())
    #expect(once.render() == twice.render())
  }

  @Test func namesNumbersAndTimesFollowTheTextFormat() {
    #expect(OpenMetricsRenderer.metricName("http.server.duration") == "http_server_duration")
    #expect(OpenMetricsRenderer.metricName("ns:metric") == "ns:metric")
    #expect(OpenMetricsRenderer.labelName("ns:key") == "ns_key")
    #expect(OpenMetricsRenderer.labelName("") == "_")
    #expect(OpenMetricsRenderer.number(.nan) == "NaN")
    #expect(OpenMetricsRenderer.number(-.infinity) == "-Inf")
    #expect(OpenMetricsRenderer.number(0.25) == "0.25")
    #expect(OpenMetricsRenderer.seconds(1_700_000_000_000_000_000) == "1700000000")
    #expect(OpenMetricsRenderer.seconds(1_700_000_000_120_000_000) == "1700000000.12")
    #expect(OpenMetricsRenderer.seconds(5) == "0.000000005")
  }

  @Test func pointsWithoutAnOpenMetricsFormAreCountedNotWritten() throws {
    let delta =
      Self.string(1, "d") + Wire.field(9, bytes: Wire.field(1, bytes: Wire.fixed64(3, 1)) + Self.varintField(2, 1))
    let exponential = Self.string(1, "e") + Wire.field(10, bytes: Wire.field(1, bytes: Wire.fixed64(3, 1)))
    let noValue =
      Self.string(1, "g") + Wire.field(5, bytes: Wire.field(1, bytes: Wire.fixed64(3, 1) + Self.varintField(8, 1)))
    let scope = Wire.field(2, bytes: delta) + Wire.field(2, bytes: exponential) + Wire.field(2, bytes: noValue)
    var renderer = OpenMetricsRenderer()
    try renderer.add(request: Wire.field(1, bytes: Wire.field(2, bytes: scope)))
    #expect(renderer.skippedPoints == 3)
    #expect(String(decoding: renderer.render(), as: UTF8.self) == "# EOF\n")
  }
}
