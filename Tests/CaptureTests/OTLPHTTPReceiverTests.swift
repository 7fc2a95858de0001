import Capture
import EvidenceIO
import Foundation
import Logging
import Manifest
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

@testable import Ingest
@testable import Receivers
@testable import Seal

// MARK: - Test support shared by the HTTP and admin server tests

/// An ingest that runs the real ``OTLPRequestDecoder`` and records what it was given; the
/// completion can be held back to test ordering and pipelining.
final class RecordingIngest: OTLPIngest {
  struct Export: Sendable {
    var signal: Signal
    var encoding: OTLPEncoding
    var tenant: String?
    var body: [UInt8]
    var journaled: [UInt8]?
  }

  struct State {
    var exports: [Export] = []
    var inFlight = 0
    var reservedTotal = 0
    var releasedTotal = 0
    var reserveCalls = 0
    var inFlightLimit = Int.max
    var problem: RejectedRequest?
    var failWith: RejectedRequest?
    var hold = false
    var held: [@Sendable () -> Void] = []
  }

  let state = Mutex(State())
  let maxRequestBytes: Int

  init(maxRequestBytes: Int = 1 << 20, inFlightLimit: Int = .max) {
    self.maxRequestBytes = maxRequestBytes
    state.withLock { $0.inFlightLimit = inFlightLimit }
  }

  func reserveInFlight(_ bytes: Int) -> Bool {
    state.withLock { state in
      state.reserveCalls += 1
      guard state.inFlight + bytes <= state.inFlightLimit else { return false }
      state.inFlight += bytes
      state.reservedTotal += bytes
      return true
    }
  }

  func releaseInFlight(_ bytes: Int) {
    state.withLock { state in
      state.inFlight -= bytes
      state.releasedTotal += bytes
    }
  }

  func admissionProblem() -> RejectedRequest? { state.withLock { $0.problem } }

  func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    let result: Result<IngestReceipt, RejectedRequest>
    var journaled: [UInt8]?
    do {
      journaled = try OTLPRequestDecoder.decode(body: body, signal: signal, encoding: encoding)
      result = .success(IngestReceipt(seq: 0, signal: signal, tenant: tenantHeader ?? "default"))
    } catch {
      result = .failure(error)
    }
    let hold = state.withLock { state -> Bool in
      state.exports.append(
        Export(signal: signal, encoding: encoding, tenant: tenantHeader, body: body, journaled: journaled))
      if case .success = result, let failure = state.failWith {
        state.held.append { completion(.failure(failure)) }
      } else {
        state.held.append { completion(result) }
      }
      return state.hold
    }
    if !hold { _ = fireHeld() }
  }

  /// Calls the held completions in order; returns how many.
  @discardableResult
  func fireHeld() -> Int {
    let held = state.withLock { state -> [@Sendable () -> Void] in
      defer { state.held = [] }
      return state.held
    }
    for completion in held { completion() }
    return held.count
  }

  var exports: [Export] { state.withLock { $0.exports } }
  var inFlight: Int { state.withLock { $0.inFlight } }
}

/// One HTTP response parsed from raw bytes.
struct ParsedResponse {
  var status: Int
  var headers: [(String, String)]
  var body: [UInt8]

  func header(_ name: String) -> String? {
    headers.first { $0.0.lowercased() == name.lowercased() }?.1
  }

  /// `(code, message)` of a protobuf `google.rpc.Status` body.
  var protobufStatus: (code: Int, message: String)? {
    var code = 0
    var message = ""
    var index = 0
    func varint() -> Int? {
      var value = 0
      var shift = 0
      while index < body.count {
        let byte = body[index]
        index += 1
        value |= Int(byte & 0x7F) << shift
        if byte < 0x80 { return value }
        shift += 7
      }
      return nil
    }
    while index < body.count {
      guard let tag = varint() else { return nil }
      switch tag {
      case 0x08:
        guard let value = varint() else { return nil }
        code = value
      case 0x12:
        guard let length = varint(), index + length <= body.count else { return nil }
        message = String(decoding: body[index..<index + length], as: UTF8.self)
        index += length
      default: return nil
      }
    }
    return (code, message)
  }

  /// `(code, message)` of a JSON `google.rpc.Status` body.
  var jsonStatus: (code: Int, message: String)? {
    guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
      let code = object["code"] as? Int, let message = object["message"] as? String
    else { return nil }
    return (code, message)
  }
}

enum HTTPText {
  /// Splits raw bytes into complete responses (1xx included); the rest is returned unparsed.
  static func parse(_ bytes: [UInt8]) -> (responses: [ParsedResponse], rest: [UInt8]) {
    var responses: [ParsedResponse] = []
    var rest = bytes[...]
    let separator: [UInt8] = Array("\r\n\r\n".utf8)
    while let end = rest.firstRange(of: separator) {
      let headText = String(decoding: rest[rest.startIndex..<end.lowerBound], as: UTF8.self)
      var lines = headText.components(separatedBy: "\r\n")
      let statusLine = lines.removeFirst().split(separator: " ")
      guard statusLine.count >= 2, let status = Int(statusLine[1]) else { break }
      let headers = lines.compactMap { line -> (String, String)? in
        guard let colon = line.firstIndex(of: ":") else { return nil }
        return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
      }
      let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) } ?? 0
      let bodyStart = end.upperBound
      guard rest.endIndex - bodyStart >= length else { break }
      responses.append(
        ParsedResponse(status: status, headers: headers, body: Array(rest[bodyStart..<bodyStart + length])))
      rest = rest[(bodyStart + length)...]
    }
    return (responses, Array(rest))
  }

  /// A request with a `Content-Length` (or chunked, in chunks of `chunkSize`).
  static func request(
    _ method: String = "POST", path: String = "/v1/traces", contentType: String? = "application/x-protobuf",
    headers: [(String, String)] = [], body: [UInt8] = [], chunked: Bool = false, chunkSize: Int = 1000,
    version: String = "HTTP/1.1"
  ) -> [UInt8] {
    var text = "\(method) \(path) \(version)\r\nHost: localhost\r\n"
    if let contentType { text += "Content-Type: \(contentType)\r\n" }
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    if chunked {
      text += "Transfer-Encoding: chunked\r\n\r\n"
      var out = Array(text.utf8)
      var offset = 0
      while offset < body.count {
        let count = min(chunkSize, body.count - offset)
        out += Array("\(String(count, radix: 16))\r\n".utf8) + body[offset..<offset + count] + Array("\r\n".utf8)
        offset += count
      }
      return out + Array("0\r\n\r\n".utf8)
    }
    if !headers.contains(where: { $0.0.lowercased() == "content-length" }) {
      text += "Content-Length: \(body.count)\r\n"
    }
    return Array((text + "\r\n").utf8) + body
  }
}

/// gzip and zlib streams made of stored deflate blocks: real formats zlib inflates, written
/// without a compressor.
enum StoredDeflate {
  static func blocks(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var offset = 0
    repeat {
      let count = min(65535, data.count - offset)
      let final: UInt8 = offset + count == data.count ? 1 : 0
      out.append(final)
      out += [UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
      out += data[offset..<offset + count]
      offset += count
    } while offset < data.count
    return out
  }

  static func crc32(_ data: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
  }

  static func gzip(_ data: [UInt8]) -> [UInt8] {
    let crc = crc32(data)
    let size = UInt32(truncatingIfNeeded: data.count)
    return [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF] + blocks(data)
      + (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * $0)) }
      + (0..<4).map { UInt8(truncatingIfNeeded: size >> (8 * $0)) }
  }

  static func zlib(_ data: [UInt8]) -> [UInt8] {
    var a: UInt32 = 1
    var b: UInt32 = 0
    for byte in data {
      a = (a + UInt32(byte)) % 65521
      b = (b + a) % 65521
    }
    let adler = b << 16 | a
    return [0x78, 0x01] + blocks(data) + (0..<4).reversed().map { UInt8(truncatingIfNeeded: adler >> (8 * $0)) }
  }

  /// `gzip.compress(b"\0" * 100000, mtime=0)` from Python: 132 bytes inflating to 100,000.
  static let zeroBomb: [UInt8] = hex(
    "1f8b0800000000000203edc13101000000c2a0f54f6d0d0fa0" + String(repeating: "00", count: 96)
      + "8057037d9511d4a0860100")

  static func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(text.utf8)[...]
    while chars.count >= 2, let byte = UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16) {
      out.append(byte)
      chars = chars.dropFirst(2)
    }
    return out
  }
}

/// zstd frames written by hand (RFC 8878) for bodies a compressor would not make: a gibibyte from
/// a few kilobytes, an oversized window.
enum HandMadeZstd {
  /// A frame without content size or checksum, window 2^`windowLog`, holding `count` copies of
  /// `byte` as RLE blocks (4 bytes per 128 KiB).
  static func rleFrame(byte: UInt8, count: Int, windowLog: Int = 17) -> [UInt8] {
    var out: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, UInt8((windowLog - 10) << 3)]
    var left = count
    repeat {
      let size = min(128 << 10, left)
      left -= size
      // Block header: bit 0 last block, bits 1-2 type (1 = RLE), bits 3-23 the regenerated size.
      let header = UInt32(left == 0 ? 1 : 0) | 1 << 1 | UInt32(size) << 3
      out += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF), byte]
    } while left > 0
    return out
  }
}

/// Real OTLP requests from `fixtures/otlp` (produced by the OpenTelemetry SDK and Collector).
enum OTLPFixtures {
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("fixtures/otlp")

  /// The OTLP/JSON lines of `<signal>.otlp.jsonl`.
  static func jsonLines(_ signal: Signal) throws -> [[UInt8]] {
    let data = try Data(contentsOf: directory.appendingPathComponent("\(signal.rawValue).otlp.jsonl"))
    return Array(data).split(separator: UInt8(ascii: "\n")).map(Array.init)
  }

  /// The length-prefixed protobuf records of `app.otlp.pb` with their signals.
  static func protobufRequests() throws -> [(signal: Signal, request: [UInt8])] {
    let path = directory.appendingPathComponent("app.otlp.pb").path
    let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    return try OTLPFileImporter.read(bytes: bytes, path: path).records.map { ($0.signal, $0.request) }
  }

  static func protobuf(_ signal: Signal) throws -> [UInt8] {
    guard let request = try protobufRequests().first(where: { $0.signal == signal })?.request else {
      throw FixtureError(message: "no \(signal.rawValue) request in app.otlp.pb")
    }
    return request
  }

  struct FixtureError: Error { var message: String }
}

/// An OTLP/HTTP pipeline on an `EmbeddedChannel`: raw bytes in, raw bytes out, time advanced by
/// hand.
final class EmbeddedHTTP {
  let channel = EmbeddedChannel()
  let ingest: RecordingIngest
  private var received: [UInt8] = []

  init(ingest: RecordingIngest = RecordingIngest(), options: OTLPHTTPReceiver.Options = .init()) throws {
    self.ingest = ingest
    try OTLPHTTPReceiver.configure(channel: channel, ingest: ingest, options: options, logger: Logger(label: "test"))
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4318)).wait()
  }

  /// Feeds `bytes` in pieces of `pieceSize` (1: one byte at a time), running queued tasks after
  /// each; stops early if the server closed the connection.
  func send(_ bytes: [UInt8], pieceSize: Int = .max) throws {
    var offset = 0
    while offset < bytes.count, channel.isActive {
      let count = min(pieceSize, bytes.count - offset)
      try channel.writeInbound(channel.allocator.buffer(bytes: bytes[offset..<offset + count]))
      channel.embeddedEventLoop.run()
      offset += count
    }
  }

  /// Everything written so far, as parsed responses.
  func responses() throws -> [ParsedResponse] {
    channel.embeddedEventLoop.run()
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
      received += Array(buffer.readableBytesView)
    }
    return HTTPText.parse(received).responses
  }

  func rawOutput() throws -> String {
    _ = try responses()
    return String(decoding: received, as: UTF8.self)
  }

  func advance(by amount: TimeAmount) {
    channel.embeddedEventLoop.advanceTime(by: amount)
  }
}

// MARK: - EmbeddedChannel tests

@Suite struct OTLPHTTPReceiverTests {
  @Test func protobufTracesAreExportedWithTheClientsExactBytes() throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.traces)
    try http.send(HTTPText.request(headers: [("X-Scope-OrgID", "acme")], body: body))
    let responses = try http.responses()
    #expect(responses.count == 1)
    #expect(responses.first?.status == 200)
    #expect(responses.first?.header("Content-Type") == "application/x-protobuf")
    #expect(responses.first?.body == [])
    #expect(responses.first?.header("Connection") == nil)
    let exports = http.ingest.exports
    #expect(exports.count == 1)
    #expect(exports.first?.signal == .traces)
    #expect(exports.first?.encoding == .protobuf)
    #expect(exports.first?.tenant == "acme")
    #expect(exports.first?.body == body)
    #expect(exports.first?.journaled == body)
    #expect(http.ingest.inFlight == 0)
    #expect(http.channel.isActive)
  }

  @Test(arguments: [Signal.traces, .logs, .metrics])
  func jsonRequestsOfEachSignalGetAJSONSuccess(signal: Signal) throws {
    let http = try EmbeddedHTTP()
    let lines = try OTLPFixtures.jsonLines(signal)
    for line in lines {
      try http.send(
        HTTPText.request(path: "/v1/\(signal.rawValue)", contentType: "application/json; charset=utf-8", body: line))
    }
    let responses = try http.responses()
    #expect(responses.map(\.status) == Array(repeating: 200, count: lines.count))
    #expect(responses.allSatisfy { $0.body == Array("{}".utf8) && $0.header("Content-Type") == "application/json" })
    #expect(http.ingest.exports.map(\.signal) == Array(repeating: signal, count: lines.count))
    #expect(http.ingest.exports.allSatisfy { $0.journaled?.isEmpty == false && $0.tenant == nil })
  }

  @Test func requestsFedOneByteAtATimeAreAnsweredInOrder() throws {
    let http = try EmbeddedHTTP()
    let traces = try OTLPFixtures.protobuf(.traces)
    let logs = try OTLPFixtures.jsonLines(.logs)[0]
    let bytes =
      HTTPText.request(body: traces)
      + HTTPText.request(path: "/v1/logs", contentType: "application/json", body: logs, chunked: true, chunkSize: 100)
      + HTTPText.request(path: "/v1/nope", body: [1, 2, 3])
    try http.send(bytes, pieceSize: 1)
    let responses = try http.responses()
    #expect(responses.map(\.status) == [200, 200, 404])
    #expect(http.ingest.exports.map(\.signal) == [.traces, .logs])
    #expect(http.ingest.exports.first?.body == traces)
    #expect(http.ingest.exports.last?.body == logs)
    #expect(http.ingest.inFlight == 0)
  }

  @Test func pipelinedRequestsWaitForTheEarlierAnswer() throws {
    let ingest = RecordingIngest()
    ingest.state.withLock { $0.hold = true }
    let http = try EmbeddedHTTP(ingest: ingest)
    let traces = try OTLPFixtures.protobuf(.traces)
    let metrics = try OTLPFixtures.protobuf(.metrics)
    try http.send(HTTPText.request(body: traces) + HTTPText.request(path: "/v1/metrics", body: metrics))
    // The second request is held by NIO's pipelining handler until the first is answered.
    #expect(ingest.exports.count == 1)
    #expect(try http.responses().isEmpty)
    #expect(ingest.inFlight == traces.count)
    #expect(ingest.fireHeld() == 1)
    #expect(try http.responses().map(\.status) == [200])
    #expect(ingest.exports.map(\.signal) == [.traces, .metrics])
    #expect(ingest.fireHeld() == 1)
    #expect(try http.responses().map(\.status) == [200, 200])
    #expect(ingest.inFlight == 0)
  }

  @Test func thousandsOfPipelinedRefusalsBehindAnExportAreAllAnswered() throws {
    let ingest = RecordingIngest()
    ingest.state.withLock { $0.hold = true }
    let http = try EmbeddedHTTP(ingest: ingest)
    let refused = Array("GET /v1/traces HTTP/1.1\r\n\r\n".utf8)
    let count = 5000
    try http.send(
      HTTPText.request(body: try OTLPFixtures.protobuf(.traces))
        + Array([[UInt8]](repeating: refused, count: count).joined()))
    #expect(ingest.fireHeld() == 1)
    let responses = try http.responses()
    #expect(responses.count == count + 1)
    #expect(responses.first?.status == 200)
    #expect(responses.dropFirst().allSatisfy { $0.status == 405 })
    #expect(http.channel.isActive)
  }

  @Test func malformedProtobufGets400WithAStatusNamingTheProblem() throws {
    let http = try EmbeddedHTTP()
    var body = try OTLPFixtures.protobuf(.traces)
    body.removeLast(7)
    try http.send(HTTPText.request(body: body))
    let response = try #require(try http.responses().first)
    #expect(response.status == 400)
    #expect(response.header("Content-Type") == "application/x-protobuf")
    let status = try #require(response.protobufStatus)
    #expect(status.code == 3)
    #expect(status.message.hasPrefix("protobuf: "))
    #expect(status.message.contains("byte"))
    #expect(http.channel.isActive)
    #expect(http.ingest.inFlight == 0)
  }

  @Test func malformedJSONGets400WithAJSONStatus() throws {
    let http = try EmbeddedHTTP()
    try http.send(
      HTTPText.request(
        path: "/v1/logs", contentType: "application/json", body: Array("{\"resourceLogs\":[{]}".utf8)))
    let response = try #require(try http.responses().first)
    #expect(response.status == 400)
    #expect(response.header("Content-Type") == "application/json")
    let status = try #require(response.jsonStatus)
    #expect(status.code == 3)
    #expect(status.message.hasPrefix("JSON line 1 column "))
  }

  @Test func unknownPathsMethodsAndMediaTypesAreRefused() throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.logs)
    try http.send(HTTPText.request(path: "/v1/profiles", body: body))
    try http.send(HTTPText.request("GET", path: "/v1/logs"))
    try http.send(HTTPText.request(path: "/v1/logs", contentType: "text/plain", body: body))
    try http.send(HTTPText.request(path: "/v1/logs", contentType: nil, body: body))
    try http.send(HTTPText.request(path: "/v1/logs", headers: [("Content-Encoding", "br")], body: body))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [404, 405, 415, 415, 415])
    #expect(responses[1].header("Allow") == "POST")
    #expect(responses[0].protobufStatus?.code == 5)
    #expect(responses[2].protobufStatus?.message.contains("text/plain") == true)
    #expect(responses[4].protobufStatus?.message.contains("br") == true)
    #expect(http.ingest.exports.isEmpty)
    // Every refusal kept the connection: the bodies were skipped.
    #expect(http.channel.isActive)
    try http.send(HTTPText.request(path: "/v1/logs", body: body))
    #expect(try http.responses().last?.status == 200)
  }

  @Test func contentLengthOverTheLimitIsRefusedBeforeTheBody() throws {
    let ingest = RecordingIngest(maxRequestBytes: 1000)
    let http = try EmbeddedHTTP(ingest: ingest)
    try http.send(
      Array(
        "POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000000\r\n\r\n".utf8))
    let response = try #require(try http.responses().first)
    #expect(response.status == 413)
    #expect(response.header("Connection") == "close")
    #expect(response.protobufStatus?.code == 8)
    #expect(!http.channel.isActive)
    #expect(ingest.state.withLock { $0.reserveCalls } == 0)
  }

  @Test func chunkedBodyOverTheLimitIsRefusedAsItArrives() throws {
    let ingest = RecordingIngest(maxRequestBytes: 1000)
    let http = try EmbeddedHTTP(ingest: ingest)
    try http.send(HTTPText.request(body: Array(repeating: 0x0A, count: 5000), chunked: true, chunkSize: 300))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [413])
    #expect(!http.channel.isActive)
    #expect(ingest.exports.isEmpty)
    #expect(ingest.inFlight == 0)
    #expect(ingest.state.withLock { $0.reservedTotal } > 0)
  }

  @Test(arguments: ["gzip", "deflate"])
  func compressedBodiesAreInflatedBeforeExport(coding: String) throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.metrics)
    let compressed = coding == "gzip" ? StoredDeflate.gzip(body) : StoredDeflate.zlib(body)
    try http.send(HTTPText.request(path: "/v1/metrics", headers: [("Content-Encoding", coding)], body: compressed))
    try http.send(
      HTTPText.request(
        path: "/v1/metrics", headers: [("Content-Encoding", coding.uppercased())], body: compressed, chunked: true,
        chunkSize: 97))
    #expect(try http.responses().map(\.status) == [200, 200])
    #expect(http.ingest.exports.map(\.body) == [body, body])
    #expect(http.ingest.inFlight == 0)
  }

  @Test func decompressionBombIsRefusedWith413() throws {
    let ingest = RecordingIngest(maxRequestBytes: 10_000)
    let http = try EmbeddedHTTP(ingest: ingest)
    #expect(StoredDeflate.zeroBomb.count == 132)
    try http.send(HTTPText.request(headers: [("Content-Encoding", "gzip")], body: StoredDeflate.zeroBomb))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [413])
    #expect(responses.first?.protobufStatus?.message.contains("decompressed") == true)
    #expect(!http.channel.isActive)
    #expect(ingest.exports.isEmpty)
    #expect(ingest.inFlight == 0)
  }

  @Test func invalidGzipIsMalformed() throws {
    let http = try EmbeddedHTTP()
    try http.send(HTTPText.request(headers: [("Content-Encoding", "gzip")], body: Array("not gzip at all".utf8)))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [400])
    #expect(responses.first?.protobufStatus?.message.contains("Content-Encoding") == true)
    #expect(!http.channel.isActive)
    #expect(http.ingest.inFlight == 0)
  }

  @Test func zstdBodiesAreInflatedBeforeExportAndJournaledByteExact() throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.metrics)
    let compressed = try Zstd.compress(body)
    try http.send(HTTPText.request(path: "/v1/metrics", headers: [("Content-Encoding", "zstd")], body: compressed))
    try http.send(
      HTTPText.request(
        path: "/v1/metrics", headers: [("Content-Encoding", "ZSTD")], body: compressed, chunked: true, chunkSize: 97))
    let json = try OTLPFixtures.jsonLines(.logs)[0]
    try http.send(
      HTTPText.request(
        path: "/v1/logs", contentType: "application/json", headers: [("Content-Encoding", "zstd")],
        body: try Zstd.compress(json)))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [200, 200, 200])
    #expect(responses.last?.body == Array("{}".utf8))
    #expect(http.ingest.exports.map(\.body) == [body, body, json])
    #expect(http.ingest.exports.prefix(2).allSatisfy { $0.journaled == body })
    #expect(http.ingest.inFlight == 0)
    #expect(http.channel.isActive)
  }

  @Test func zstdBodyFedOneByteAtATimeThenAPlainRequest() throws {
    let http = try EmbeddedHTTP()
    let traces = try OTLPFixtures.protobuf(.traces)
    let logs = try OTLPFixtures.protobuf(.logs)
    let bytes =
      HTTPText.request(headers: [("Content-Encoding", "zstd")], body: try Zstd.compress(traces))
      + HTTPText.request(
        path: "/v1/logs", headers: [("Content-Encoding", "zstd")], body: try Zstd.compress(logs), chunked: true,
        chunkSize: 5)
      + HTTPText.request(body: traces)
    try http.send(bytes, pieceSize: 1)
    #expect(try http.responses().map(\.status) == [200, 200, 200])
    #expect(http.ingest.exports.map(\.body) == [traces, logs, traces])
    #expect(http.ingest.exports.map(\.journaled) == [traces, logs, traces])
    #expect(http.ingest.inFlight == 0)
  }

  @Test func zstdBodyOfSeveralFramesIsOneBody() throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.traces)
    let half = body.count / 2
    let frames = try Zstd.compress(Array(body[..<half])) + Zstd.compress(Array(body[half...]))
    try http.send(HTTPText.request(headers: [("Content-Encoding", "zstd")], body: frames, chunked: true, chunkSize: 64))
    #expect(try http.responses().map(\.status) == [200])
    #expect(http.ingest.exports.map(\.body) == [body])
  }

  @Test func zstdBombIsRefusedWith413WithinTheLimit() throws {
    let limit = 4 << 20
    let ingest = RecordingIngest(maxRequestBytes: limit)
    let http = try EmbeddedHTTP(ingest: ingest)
    let bomb = HandMadeZstd.rleFrame(byte: 0, count: 1 << 30)
    #expect(bomb.count < 40 << 10)
    try http.send(HTTPText.request(headers: [("Content-Encoding", "zstd")], body: bomb), pieceSize: 4096)
    var responses = try http.responses()
    // The close cuts the request short, so NIO's HTTP decoder reports EOF inside the body and its
    // protocol error handler writes an empty 400 after the 413: on a socket that write fails
    // (the connection is gone), an EmbeddedChannel records it.
    if responses.count == 2, responses[1].status == 400, responses[1].body.isEmpty { responses.removeLast() }
    #expect(responses.map(\.status) == [413])
    #expect(responses.first?.header("Connection") == "close")
    #expect(responses.first?.protobufStatus?.code == 8)
    #expect(responses.first?.protobufStatus?.message.contains("decompressed") == true)
    #expect(!http.channel.isActive)
    #expect(ingest.exports.isEmpty)
    #expect(ingest.inFlight == 0)
    // What the handler buffered (and reserved for) never passed the limit.
    #expect(ingest.state.withLock { $0.reservedTotal } <= limit)
  }

  @Test func corruptZstdIsMalformed() throws {
    let http = try EmbeddedHTTP()
    try http.send(HTTPText.request(headers: [("Content-Encoding", "zstd")], body: Array("not zstd at all".utf8)))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [400])
    #expect(responses.first?.protobufStatus?.code == 3)
    let message = responses.first?.protobufStatus?.message ?? ""
    #expect(message.contains("Content-Encoding") && message.contains("zstd"))
    #expect(!http.channel.isActive)
    #expect(http.ingest.inFlight == 0)
    #expect(http.ingest.exports.isEmpty)
  }

  @Test(arguments: [1, 4, 20])
  func truncatedZstdIsMalformed(cut: Int) throws {
    let http = try EmbeddedHTTP()
    let compressed = try Zstd.compress(try OTLPFixtures.protobuf(.traces))
    try http.send(
      HTTPText.request(headers: [("Content-Encoding", "zstd")], body: Array(compressed.dropLast(cut)), chunked: true))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [400])
    #expect(responses.first?.protobufStatus?.message.contains("truncated") == true)
    #expect(http.ingest.exports.isEmpty)
    #expect(http.ingest.inFlight == 0)
  }

  @Test(arguments: ["zstd", "gzip"])
  func emptyCompressedBodyIsNotAStream(coding: String) throws {
    // Unlike an empty identity body (an empty request), zero bytes are no zstd frame and no gzip
    // member; both decoders agree.
    let http = try EmbeddedHTTP()
    try http.send(HTTPText.request(headers: [("Content-Encoding", coding)], body: []))
    #expect(try http.responses().map(\.status) == [400])
    #expect(http.ingest.exports.isEmpty)
  }

  @Test func zstdFrameDeclaringAGibibyteWindowIsRefused() throws {
    let http = try EmbeddedHTTP()
    try http.send(
      HTTPText.request(
        headers: [("Content-Encoding", "zstd")], body: HandMadeZstd.rleFrame(byte: 0, count: 100, windowLog: 30)))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [400])
    #expect(responses.first?.protobufStatus?.message.contains("window") == true)
    #expect(http.ingest.exports.isEmpty)
    #expect(!http.channel.isActive)
  }

  @Test func stackedCodingsWithZstdAreUnsupportedAndNotInflated() throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.traces)
    // Not zstd data: had it been inflated, the error would close the connection.
    try http.send(HTTPText.request(headers: [("Content-Encoding", "zstd, gzip")], body: body))
    #expect(try http.responses().map(\.status) == [415])
    #expect(try http.responses().first?.protobufStatus?.message.contains("zstd, gzip") == true)
    #expect(http.channel.isActive)
    try http.send(HTTPText.request(headers: [("Content-Encoding", "zstd")], body: try Zstd.compress(body)))
    #expect(try http.responses().map(\.status) == [415, 200])
  }
  @Test func refusedReservationGets429WithRetryAfter() throws {
    let ingest = RecordingIngest(inFlightLimit: 100)
    let http = try EmbeddedHTTP(ingest: ingest, options: .init(retryAfterSeconds: 7))
    let body = try OTLPFixtures.protobuf(.traces)
    try http.send(HTTPText.request(body: body))
    // Chunked: the reservation grows as the body arrives and fails part-way.
    try http.send(HTTPText.request(body: body, chunked: true, chunkSize: 50))
    let responses = try http.responses()
    #expect(responses.map(\.status) == [429, 429])
    #expect(responses.map { $0.header("Retry-After") } == ["7", "7"])
    #expect(responses.first?.protobufStatus?.code == 8)
    #expect(ingest.exports.isEmpty)
    #expect(ingest.inFlight == 0)
    #expect(http.channel.isActive)
  }

  @Test func admissionProblemIsAnsweredBeforeTheBody() throws {
    let ingest = RecordingIngest()
    ingest.state.withLock { $0.problem = RejectedRequest(.unavailable, "journal disk full", retryAfterSeconds: 30) }
    let http = try EmbeddedHTTP(ingest: ingest)
    try http.send(HTTPText.request(path: "/v1/logs", contentType: "application/json", body: Array("{}".utf8)))
    let response = try #require(try http.responses().first)
    #expect(response.status == 503)
    #expect(response.header("Retry-After") == "30")
    #expect(response.jsonStatus?.code == 14)
    #expect(response.jsonStatus?.message == "journal disk full")
    #expect(ingest.exports.isEmpty)
    #expect(ingest.state.withLock { $0.reserveCalls } == 0)
  }

  @Test func ingestRejectionsMapToTheirStatus() throws {
    let cases: [(RejectedRequest, Int, Int)] = [
      (RejectedRequest(.tenantRejected, "tenant \"x\" is not allowed"), 403, 7),
      (RejectedRequest(.internalError, "journal write failed"), 500, 13),
      (RejectedRequest(.unavailable, "stopping", retryAfterSeconds: 5), 503, 14),
      (RejectedRequest(.overloaded, "busy", retryAfterSeconds: 2), 429, 8),
    ]
    for (rejection, status, code) in cases {
      let ingest = RecordingIngest()
      ingest.state.withLock { $0.failWith = rejection }
      let http = try EmbeddedHTTP(ingest: ingest)
      try http.send(HTTPText.request(body: try OTLPFixtures.protobuf(.traces)))
      let response = try #require(try http.responses().first)
      #expect(response.status == status)
      #expect(response.protobufStatus?.code == code)
      #expect(response.protobufStatus?.message == rejection.message)
      #expect(response.header("Retry-After") == rejection.retryAfterSeconds.map { "\($0)" })
      #expect(ingest.inFlight == 0)
    }
  }

  @Test func garbageGets400AndClose() throws {
    let http = try EmbeddedHTTP()
    try http.send(Array("\u{01}\u{02}GARBAGE / nonsense\r\n\r\n".utf8))
    let output = try http.rawOutput()
    #expect(output.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
    #expect(output.contains("Connection: close"))
    #expect(!http.channel.isActive)
  }

  @Test func stalledHeadGets408AfterTheReadDeadline() throws {
    let http = try EmbeddedHTTP(options: .init(idleTimeout: .seconds(60), requestReadTimeout: .seconds(5)))
    try http.send(Array("POST /v1/traces HTTP/1.1\r\nContent-Ty".utf8))
    http.advance(by: .seconds(4))
    #expect(http.channel.isActive)
    http.advance(by: .seconds(1))
    #expect(try http.rawOutput() == "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    #expect(!http.channel.isActive)
  }

  @Test func stalledBodyGets408AndItsReservationIsReleased() throws {
    let http = try EmbeddedHTTP(options: .init(requestReadTimeout: .seconds(5)))
    let body = try OTLPFixtures.protobuf(.traces)
    let request = HTTPText.request(body: body)
    try http.send(Array(request.dropLast(10)))
    #expect(http.ingest.inFlight == body.count)
    http.advance(by: .seconds(5))
    #expect(try http.rawOutput().hasPrefix("HTTP/1.1 408 "))
    #expect(!http.channel.isActive)
    #expect(http.ingest.inFlight == 0)
    #expect(http.ingest.exports.isEmpty)
  }

  @Test func idleKeepAliveConnectionIsClosed() throws {
    let http = try EmbeddedHTTP(options: .init(idleTimeout: .seconds(10), requestReadTimeout: .seconds(3)))
    try http.send(HTTPText.request(body: try OTLPFixtures.protobuf(.logs), chunked: false).map { $0 }, pieceSize: .max)
    #expect(try http.responses().count == 1)
    http.advance(by: .seconds(9))
    #expect(http.channel.isActive)
    http.advance(by: .seconds(1))
    #expect(!http.channel.isActive)
    // Closing an idle connection writes nothing more.
    #expect(try http.responses().count == 1)
  }

  @Test func closedConnectionReleasesThePartialBodysReservation() throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.traces)
    try http.send(Array(HTTPText.request(body: body).dropLast(100)))
    #expect(http.ingest.inFlight == body.count)
    _ = try http.channel.finish()
    #expect(http.ingest.inFlight == 0)
  }

  @Test func exportCompletingAfterTheConnectionClosedStillReleasesOnce() throws {
    let ingest = RecordingIngest()
    ingest.state.withLock { $0.hold = true }
    let http = try EmbeddedHTTP(ingest: ingest)
    let body = try OTLPFixtures.protobuf(.logs)
    try http.send(HTTPText.request(path: "/v1/logs", body: body))
    _ = try http.channel.finish()
    #expect(ingest.inFlight == body.count)
    #expect(ingest.fireHeld() == 1)
    http.channel.embeddedEventLoop.run()
    #expect(ingest.inFlight == 0)
    #expect(ingest.state.withLock { $0.releasedTotal } == body.count)
  }

  @Test func expectContinueGets100BeforeTheBody() throws {
    let http = try EmbeddedHTTP()
    let body = try OTLPFixtures.protobuf(.traces)
    let request = HTTPText.request(headers: [("Expect", "100-continue")], body: body)
    let headEnd = request.count - body.count
    try http.send(Array(request[..<headEnd]))
    #expect(try http.responses().map(\.status) == [100])
    try http.send(Array(request[headEnd...]))
    #expect(try http.responses().map(\.status) == [100, 200])
  }

  @Test func http10RequestsCloseAfterTheAnswer() throws {
    let http = try EmbeddedHTTP()
    try http.send(HTTPText.request(body: try OTLPFixtures.protobuf(.traces), version: "HTTP/1.0"))
    let response = try #require(try http.responses().first)
    #expect(response.status == 200)
    #expect(response.header("Connection") == "close")
    #expect(!http.channel.isActive)
  }

  @Test func emptyProtobufBodyIsAnEmptyRequest() throws {
    let http = try EmbeddedHTTP()
    try http.send(HTTPText.request(path: "/v1/metrics"))
    #expect(try http.responses().map(\.status) == [200])
    #expect(http.ingest.exports.first?.journaled == [])
  }
}

// MARK: - A real server on 127.0.0.1

/// A blocking TCP client with a receive timeout, so a test can see exactly what the server
/// wrote and whether it closed.
final class BlockingClient {
  private let fd: Int32
  private var received: [UInt8] = []
  /// Whether the server closed (EOF or reset).
  private(set) var closed = false

  init(port: Int, receiveTimeoutSeconds: Int = 5) throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ClientError(message: "socket failed") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else {
      close(fd)
      throw ClientError(message: "connect failed: errno \(errno)")
    }
    var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit { close(fd) }

  func send(_ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      guard sent > 0 else { throw ClientError(message: "send failed: errno \(errno)") }
      offset += sent
    }
  }

  /// Reads until `count` complete responses arrived, the server closed, or the receive timeout
  /// passed; returns the responses so far.
  @discardableResult
  func read(responses count: Int) -> [ParsedResponse] {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while HTTPText.parse(received).responses.count < count, !closed {
      let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n > 0 {
        received += buffer[..<n]
      } else if n == 0 || errno == ECONNRESET {
        closed = true
      } else {
        break  // timeout
      }
    }
    return HTTPText.parse(received).responses
  }

  /// Reads until the server closes or the timeout passes; `true` if it closed.
  /// ``read(responses:)`` on a dispatch thread: a test whose server calls an `async` handler must
  /// not block one of the few threads of Swift's cooperative pool while it waits for the answer.
  func readOffPool(responses count: Int) async -> [ParsedResponse] {
    let client = UncheckedClient(client: self)
    return await withCheckedContinuation { continuation in
      DispatchQueue.global().async { continuation.resume(returning: client.client.read(responses: count)) }
    }
  }

  /// ``waitForClose()`` on a dispatch thread (see ``readOffPool(responses:)``).
  func waitForCloseOffPool() async -> Bool {
    let client = UncheckedClient(client: self)
    return await withCheckedContinuation { continuation in
      DispatchQueue.global().async { continuation.resume(returning: client.client.waitForClose()) }
    }
  }

  func waitForClose() -> Bool {
    read(responses: Int.max)
    return closed
  }

  var text: String { String(decoding: received, as: UTF8.self) }

  struct ClientError: Error { var message: String }
}

/// A receiver on an ephemeral loopback port for one test.
func withReceiver(
  ingest: RecordingIngest = RecordingIngest(), options: OTLPHTTPReceiver.Options = .init(port: 0),
  _ body: (OTLPHTTPReceiver, Int) async throws -> Void
) async throws {
  let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
  let receiver = OTLPHTTPReceiver(ingest: ingest, options: options, group: group, logger: Logger(label: "test"))
  let address = try await receiver.start()
  let port = try #require(address.port)
  do {
    try await body(receiver, port)
  } catch {
    await receiver.stop()
    try await group.shutdownGracefully()
    throw error
  }
  await receiver.stop()
  try await group.shutdownGracefully()
}

/// Calls completions from another thread after a short delay, like a journal's sync thread.
final class AsyncCompletingIngest: OTLPIngest {
  let inner = RecordingIngest()
  var maxRequestBytes: Int { inner.maxRequestBytes }
  func reserveInFlight(_ bytes: Int) -> Bool { inner.reserveInFlight(bytes) }
  func releaseInFlight(_ bytes: Int) { inner.releaseInFlight(bytes) }
  func admissionProblem() -> RejectedRequest? { inner.admissionProblem() }
  func export(
    body: [UInt8], signal: Signal, encoding: OTLPEncoding, tenantHeader: String?,
    completion: @escaping @Sendable (Result<IngestReceipt, RejectedRequest>) -> Void
  ) {
    inner.export(body: body, signal: signal, encoding: encoding, tenantHeader: tenantHeader) { result in
      Thread.detachNewThread {
        Thread.sleep(forTimeInterval: 0.02)
        completion(result)
      }
    }
  }
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct OTLPHTTPServerTests {
  @Test func realServerAnswersWhenTheCompletionFiresOnAnotherThread() async throws {
    let ingest = AsyncCompletingIngest()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let receiver = OTLPHTTPReceiver(
      ingest: ingest, options: .init(port: 0), group: group, logger: Logger(label: "test"))
    let port = try #require(try await receiver.start().port)
    let client = try BlockingClient(port: port)
    let traces = try OTLPFixtures.protobuf(.traces)
    let logs = try OTLPFixtures.jsonLines(.logs)[0]
    // Two pipelined requests in one write: answered in order.
    try client.send(
      HTTPText.request(body: traces) + HTTPText.request(path: "/v1/logs", contentType: "application/json", body: logs))
    let responses = client.read(responses: 2)
    #expect(responses.map(\.status) == [200, 200])
    #expect(responses.map { $0.header("Content-Type") } == ["application/x-protobuf", "application/json"])
    #expect(ingest.inner.exports.map(\.signal) == [.traces, .logs])
    #expect(ingest.inner.inFlight == 0)
    await receiver.stop()
    #expect(client.waitForClose())
    try await group.shutdownGracefully()
  }

  @Test func connectionsOverTheLimitGet503AndTheOthersKeepWorking() async throws {
    let options = OTLPHTTPReceiver.Options(port: 0, maxConnections: 1, retryAfterSeconds: 3)
    try await withReceiver(options: options) { receiver, port in
      let body = try OTLPFixtures.protobuf(.traces)
      let first = try BlockingClient(port: port)
      try first.send(HTTPText.request(body: body))
      #expect(first.read(responses: 1).map(\.status) == [200])

      let second = try BlockingClient(port: port)
      let refused = second.read(responses: 1)
      #expect(refused.map(\.status) == [503])
      #expect(refused.first?.header("Retry-After") == "3")
      #expect(second.waitForClose())

      try first.send(HTTPText.request(body: body))
      #expect(first.read(responses: 2).map(\.status) == [200, 200])
      #expect(receiver.connectionCount == 1)
    }
  }

  @Test func slowlorisGets408WhileAWellFormedClientIsServed() async throws {
    let options = OTLPHTTPReceiver.Options(port: 0, idleTimeout: .seconds(30), requestReadTimeout: .milliseconds(400))
    try await withReceiver(options: options) { _, port in
      let slow = try BlockingClient(port: port)
      let request = HTTPText.request(body: try OTLPFixtures.protobuf(.logs), version: "HTTP/1.1")
      try slow.send(Array(request.prefix(20)))
      let good = try BlockingClient(port: port)
      try good.send(HTTPText.request(path: "/v1/logs", body: try OTLPFixtures.protobuf(.logs)))
      #expect(good.read(responses: 1).map(\.status) == [200])
      try await Task.sleep(for: .milliseconds(150))
      try? slow.send(Array(request[20..<30]))
      #expect(slow.waitForClose())
      #expect(slow.text == "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    }
  }

  @Test func idleConnectionIsClosedAfterTheIdleTimeout() async throws {
    let options = OTLPHTTPReceiver.Options(port: 0, idleTimeout: .milliseconds(300))
    try await withReceiver(options: options) { receiver, port in
      let client = try BlockingClient(port: port)
      let start = ContinuousClock.now
      #expect(client.waitForClose())
      #expect(client.text.isEmpty)
      #expect(ContinuousClock.now - start >= .milliseconds(250))
      for _ in 0..<50 where receiver.connectionCount > 0 { try await Task.sleep(for: .milliseconds(20)) }
      #expect(receiver.connectionCount == 0)
    }
  }

  @Test func stopLetsAnExportInProgressAnswerThenCloses() async throws {
    let ingest = RecordingIngest()
    ingest.state.withLock { $0.hold = true }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let receiver = OTLPHTTPReceiver(
      ingest: ingest, options: .init(port: 0, shutdownGracePeriod: .seconds(10)), group: group,
      logger: Logger(label: "test"))
    let port = try #require(try await receiver.start().port)
    let client = try BlockingClient(port: port)
    try client.send(HTTPText.request(body: try OTLPFixtures.protobuf(.traces)))
    for _ in 0..<100 where ingest.exports.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
    #expect(ingest.exports.count == 1)
    let stopping = Task { await receiver.stop() }
    try await Task.sleep(for: .milliseconds(100))
    // The listener is closed, the connection still waits for its answer.
    #expect(throws: (any Error).self) { _ = try BlockingClient(port: port) }
    #expect(ingest.fireHeld() == 1)
    let responses = client.read(responses: 1)
    #expect(responses.map(\.status) == [200])
    #expect(responses.first?.header("Connection") == "close")
    #expect(client.waitForClose())
    await stopping.value
    #expect(ingest.inFlight == 0)
    try await group.shutdownGracefully()
  }

  @Test func startTwiceIsRefused() async throws {
    try await withReceiver { receiver, _ in
      await #expect(throws: HTTPServerError.self) { _ = try await receiver.start() }
    }
  }
}

/// Hands a client to one dispatch thread while the test awaits it; nothing else touches it then.
private struct UncheckedClient: @unchecked Sendable {
  let client: BlockingClient
}
