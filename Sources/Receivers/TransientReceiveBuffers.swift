internal import NIOCore

/// Receive buffers that a connection does not keep between reads.
///
/// NIO keeps a connection's receive buffers in a per-channel pool (up to `maxMessagesPerRead`
/// of them, each as large as the adaptive allocator ever grew it: 64 KiB after one bulk read)
/// for the life of the connection, so that reading costs no allocation. With thousands of
/// connections that is most of the process's memory and none of it is counted by the in-flight
/// bound: measured with 1,357 OTLP/HTTP connections posting ~242 KiB bodies, the pooled buffers
/// were 69 MiB of a 198 MiB heap peak.
///
/// This allocator sizes each buffer like NIO's adaptive allocator (64 KiB reads for bulk
/// transfers, small ones for small requests) but reports that it has no fixed next size and may
/// always grow, which is what makes NIO's pool allocate a fresh buffer for each read instead of
/// reusing (and keeping) one; the buffer is freed as soon as the pipeline has processed it. With
/// ``maxMessagesPerRead`` reads per wake-up the pool only stores the first (small) buffer.
struct TransientRecvByteBufferAllocator: RecvByteBufferAllocator {
  /// Reads per wake-up to configure with this allocator: NIO's pool stores the first buffer of
  /// each of these read slots, so more than one would keep that many bulk-sized buffers.
  static let maxMessagesPerRead: UInt = 1

  private var sizes: AdaptiveRecvByteBufferAllocator

  /// - Parameters:
  ///   - minimum: the smallest buffer size for a connection that reads little.
  ///   - initial: the size of a connection's first read, the only buffer its pool keeps for the
  ///     life of the connection. Small, because every open connection (an idle one too) holds
  ///     it: the size grows from the second read on when requests are larger.
  ///   - maximum: the largest buffer size, for bulk transfers.
  init(minimum: Int = 256, initial: Int = 512, maximum: Int = 64 << 10) {
    sizes = AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
  }

  func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
    sizes.buffer(allocator: allocator)
  }

  /// No fixed next size: NIO's pool then only reuses its stored buffer when told the next
  /// buffer will not grow, which ``record(actualReadBytes:)`` never says.
  func nextBufferSize() -> Int? {
    nil
  }

  mutating func record(actualReadBytes: Int) -> Bool {
    _ = sizes.record(actualReadBytes: actualReadBytes)
    return true
  }
}

extension Channel {
  /// Makes this connection read into ``TransientRecvByteBufferAllocator`` buffers; for channels
  /// a library accepts (gRPC's transport), where no bootstrap option can be set.
  func useTransientReceiveBuffers() -> EventLoopFuture<Void> {
    setOption(.maxMessagesPerRead, value: TransientRecvByteBufferAllocator.maxMessagesPerRead).flatMap {
      self.setOption(.recvAllocator, value: TransientRecvByteBufferAllocator())
    }
  }
}
