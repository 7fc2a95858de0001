import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import Capture
@testable import Ingest
@testable import Receivers

/// What the receivers hold in memory per connection and per call, beyond the bodies the
/// in-flight bound counts.
@Suite struct ReceiveMemoryTests {
  // MARK: - Receive buffers

  /// Reads `count` times through a pool configured like a channel's, each read filling the buffer
  /// the pool hands out, and returns whether the pool kept (still references) each buffer.
  private func keptByPool(_ allocator: some RecvByteBufferAllocator, maxMessagesPerRead: UInt, reads count: Int)
    -> [(capacity: Int, kept: Bool)]
  {
    var pool = NIOPooledRecvBufferAllocator(capacity: Int(maxMessagesPerRead), recvAllocator: allocator)
    var result: [(capacity: Int, kept: Bool)] = []
    for _ in 0..<count {
      var (buffer, _) = pool.buffer(allocator: ByteBufferAllocator()) { buffer in
        buffer.writeRepeatingByte(0, count: buffer.writableBytes)
      }
      pool.record(actualReadBytes: buffer.readableBytes)
      let unique = buffer.modifyIfUniquelyOwned { _ in true } ?? false
      result.append((buffer.capacity, !unique))
    }
    return result
  }

  @Test func bulkReadBuffersAreNotKeptByTheConnection() {
    let reads = keptByPool(
      TransientRecvByteBufferAllocator(), maxMessagesPerRead: TransientRecvByteBufferAllocator.maxMessagesPerRead,
      reads: 12)
    // Reads grow to the 64 KiB maximum for a bulk transfer...
    #expect(reads.last?.capacity == 64 << 10)
    // ...and only the connection's first (small) buffer stays with it.
    #expect(reads.first?.kept == true)
    #expect(reads.first.map { $0.capacity <= 2048 } == true)
    #expect(reads.dropFirst().allSatisfy { !$0.kept })
  }

  @Test func nioDefaultKeepsGrownBuffersPerConnection() {
    // The behaviour TransientRecvByteBufferAllocator exists to avoid; if NIO stops pooling, the
    // workaround can go.
    let reads = keptByPool(AdaptiveRecvByteBufferAllocator(), maxMessagesPerRead: 4, reads: 12)
    #expect(reads.last?.capacity == 64 << 10)
    #expect(reads.last?.kept == true)
  }

  // MARK: - gRPC in-flight gate

  /// Records what the gate lets through to gRPC.
  final class Forwarded: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame.FramePayload
    var frames: [HTTP2Frame.FramePayload] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      frames.append(unwrapInboundIn(data))
    }
  }

  struct GateHarness {
    let channel: EmbeddedChannel
    let forwarded: Forwarded
    let ingest: RecordingIngest
    let reservations: GRPCReservations

    init(inFlightLimit: Int, maxRequestBytes: Int = 1 << 20, identities: GRPCClientIdentities? = nil) throws {
      ingest = RecordingIngest(maxRequestBytes: maxRequestBytes, inFlightLimit: inFlightLimit)
      reservations = GRPCReservations(ingest: ingest)
      forwarded = Forwarded()
      channel = EmbeddedChannel()
      try channel.pipeline.syncOperations.addHandler(
        GRPCInFlightGate(
          ingest: ingest, reservations: reservations, retryAfterSeconds: 3, identities: identities))
      try channel.pipeline.syncOperations.addHandler(forwarded)
    }

    func sendHeaders(extra: [(String, String)] = []) throws {
      var headers: HPACKHeaders = [
        ":method": "POST", ":path": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ":scheme": "http", "content-type": "application/grpc", "te": "trailers",
      ]
      headers.add(contentsOf: extra)
      try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
    }

    /// A DATA frame starting a gRPC message that announces `length` bytes, carrying `sent` of them.
    func sendMessageStart(length: Int, sent: Int) throws {
      var buffer = ByteBuffer()
      buffer.writeInteger(UInt8(0))
      buffer.writeInteger(UInt32(length))
      buffer.writeRepeatingByte(0x0a, count: sent)
      try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(buffer))))
    }

    func outbound() throws -> [HTTP2Frame.FramePayload] {
      var frames: [HTTP2Frame.FramePayload] = []
      while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
      return frames
    }
  }

  @Test func grpcMessageLargerThanWhatIsLeftIsRefusedBeforeItIsRead() throws {
    let gate = try GateHarness(inFlightLimit: 1000)
    #expect(gate.ingest.reserveInFlight(500))
    try gate.sendHeaders()
    // 300 bytes would fit in the 500 left, but gRPC holds the message twice while handing it
    // over, so the call needs 600.
    try gate.sendMessageStart(length: 300, sent: 16)
    let answer = try gate.outbound()
    guard answer.count == 2, case .headers(let trailers) = answer[0], case .rstStream(let code) = answer[1] else {
      Issue.record("expected trailers-only and RST_STREAM, got \(answer)")
      return
    }
    #expect(trailers.endStream)
    #expect(trailers.headers.first(name: "grpc-status") == "8")
    #expect(trailers.headers.first(name: "retry-after") == "3")
    #expect(code == .noError)
    // Nothing reached gRPC, nothing more was reserved, and later DATA is dropped unread.
    try gate.sendMessageStart(length: 300, sent: 100)
    #expect(gate.forwarded.frames.isEmpty)
    #expect(gate.ingest.inFlight == 500)
  }

  @Test func grpcCallReservesTwiceItsMessageBeforeForwardingIt() throws {
    let gate = try GateHarness(inFlightLimit: 1000)
    try gate.sendHeaders()
    try gate.sendMessageStart(length: 300, sent: 16)
    #expect(try gate.outbound().isEmpty)
    #expect(gate.ingest.inFlight == 600)
    guard gate.forwarded.frames.count == 2, case .headers(let headers) = gate.forwarded.frames[0] else {
      Issue.record("expected the held headers and DATA to be forwarded, got \(gate.forwarded.frames)")
      return
    }
    let token = try #require(headers.headers.first(name: GRPCReservations.metadataKey).flatMap { UInt64($0) })
    #expect(gate.reservations.take(token) == 600)
  }

  @Test func aClientCannotSendTheIdentityTokenItself() throws {
    let identities = GRPCClientIdentities()
    let planted = identities.register(ClientIdentity(commonNames: ["collector-b"]))
    let gate = try GateHarness(inFlightLimit: 1000, identities: identities)
    // An embedded channel has no TLS connection behind it: no identity is added, and the
    // client's own token (naming another call's identity) is dropped.
    try gate.sendHeaders(extra: [(GRPCClientIdentities.metadataKey, String(planted))])
    try gate.sendMessageStart(length: 10, sent: 10)
    guard case .headers(let headers) = gate.forwarded.frames.first else {
      Issue.record("expected the headers to be forwarded, got \(gate.forwarded.frames)")
      return
    }
    #expect(headers.headers[canonicalForm: GRPCClientIdentities.metadataKey].isEmpty)
    #expect(identities.take(planted) == ClientIdentity(commonNames: ["collector-b"]))
  }

  @Test func grpcServiceKeepsOnlyTheBodyReservedWhileTheIngestHasIt() async throws {
    let ingest = RecordingIngest()
    ingest.state.withLock { $0.hold = true }
    let service = OTLPExportService(
      ingest: ingest, tenantKey: "x-scope-orgid", reservations: GRPCReservations(ingest: ingest),
      logger: Logger(label: "receive-memory-tests"))
    let body = try OTLPFixtures.protobuf(.traces)
    // What the gate reserved for this message: twice the body.
    #expect(ingest.reserveInFlight(2 * body.count))
    let call = Task { _ = await service.export(body, signal: .traces, tenant: nil, reserved: 2 * body.count) }
    for _ in 0..<500 where ingest.exports.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
    #expect(ingest.exports.count == 1)
    // gRPC's copy of the message is gone once the service has the body.
    #expect(ingest.inFlight == body.count)
    ingest.fireHeld()
    await call.value
    #expect(ingest.inFlight == 0)
  }
}
