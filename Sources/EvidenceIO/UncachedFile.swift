import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Temporary files written and read around the page cache (`O_DIRECT`).
///
/// Import spills compressed segments to a file only to copy them into the bundle moments later.
/// Through the page cache those bytes would be copied into fresh cache pages twice (spill and
/// bundle); on the virtual machines this runs on, a fresh page costs a host fault, and that
/// write path ran at about 300 MB/s against 1.8 GB/s direct. Direct I/O needs the buffer, the
/// file offset and the length aligned to the device's block; ``alignment`` covers every common
/// block size, and each piece written is padded to it. Where a file system refuses direct I/O
/// (`EINVAL`, as older tmpfs does), the file is used through the page cache instead.
public enum UncachedFile {
  /// Offset, length and buffer alignment of direct I/O.
  public static let alignment = 4096

  /// Linux's `O_DIRECT`, which Swift's Glibc module does not export (glibc defines it only
  /// under `_GNU_SOURCE`); its value depends on the architecture.
  #if os(Linux) && (arch(arm64) || arch(arm))
    static let directFlag: Int32 = 0o200000
  #elseif os(Linux)
    static let directFlag: Int32 = 0o40000
  #endif

  /// `count` rounded up to ``alignment``.
  public static func aligned(_ count: Int) -> Int {
    (count + alignment - 1) & ~(alignment - 1)
  }

  /// Turns direct I/O on for an open `fd`; `false` where the file system refuses it. Set after
  /// `open`, not as an `open` flag: a refused `O_CREAT | O_DIRECT` can leave the file created.
  public static func makeDirect(_ fd: Int32) -> Bool {
    #if os(Linux)
      let flags = fcntl(fd, F_GETFL)
      return flags >= 0 && fcntl(fd, F_SETFL, flags | directFlag) == 0
    #else
      return false
    #endif
  }

  /// Turns direct I/O off on `fd` (after a write the file system refused as unaligned).
  public static func dropDirect(_ fd: Int32) -> Bool {
    #if os(Linux)
      let flags = fcntl(fd, F_GETFL)
      return flags >= 0 && fcntl(fd, F_SETFL, flags & ~directFlag) == 0
    #else
      return true
    #endif
  }
}

/// A buffer aligned for direct I/O that grows on demand and keeps its storage between uses.
public final class AlignedBuffer: @unchecked Sendable {
  // @unchecked: one owner uses it at a time (the import's segment sink, the bundle writer's copy).
  public private(set) var pointer: UnsafeMutableRawPointer
  public private(set) var capacity: Int

  public init(capacity: Int) {
    self.capacity = max(UncachedFile.alignment, UncachedFile.aligned(capacity))
    pointer = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: UncachedFile.alignment)
    MemoryAdvice.preferHugePages(UnsafeMutableRawBufferPointer(start: pointer, count: self.capacity))
  }

  deinit { pointer.deallocate() }

  /// Makes room for at least `count` bytes; the contents are not kept.
  public func reserve(_ count: Int) {
    guard count > capacity else { return }
    pointer.deallocate()
    capacity = UncachedFile.aligned(count)
    pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: UncachedFile.alignment)
    MemoryAdvice.preferHugePages(UnsafeMutableRawBufferPointer(start: pointer, count: capacity))
  }
}

/// Advice to the kernel about large buffers of this process.
public enum MemoryAdvice {
  /// Asks for transparent huge pages over the 2 MiB-aligned part of `buffer`, before it is first
  /// written. A decompressed segment of tens of megabytes then costs one fault per 2 MiB
  /// instead of one per 4 KiB, which is most of what a fresh buffer costs on a virtual machine.
  /// Harmless where huge pages are off or the buffer is small.
  public static func preferHugePages(_ buffer: UnsafeMutableRawBufferPointer) {
    #if os(Linux)
      let huge = 2 << 20
      guard let base = buffer.baseAddress, buffer.count >= 2 * huge else { return }
      let start = (Int(bitPattern: base) + huge - 1) & ~(huge - 1)
      let end = (Int(bitPattern: base) + buffer.count) & ~(huge - 1)
      guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
      _ = madvise(pointer, end - start, MADV_HUGEPAGE)
    #endif
  }
}
