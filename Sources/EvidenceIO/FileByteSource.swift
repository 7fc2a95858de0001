import Manifest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A bundle file read with `pread`, so verification never holds more than one member at a time.
public final class FileByteSource: ByteSource, @unchecked Sendable {
  // @unchecked: the descriptor is only read with pread (no shared offset) and closed in deinit.
  private let descriptor: Int32
  public let path: String
  public let count: Int

  /// Opens `path` for reading.
  public init(path: String) throws(BundleIOError) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw BundleIOError(path: path, message: String(cString: strerror(errno))) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      let message = String(cString: strerror(errno))
      close(fd)
      throw BundleIOError(path: path, message: message)
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      close(fd)
      throw BundleIOError(path: path, message: "not a regular file")
    }
    self.descriptor = fd
    self.path = path
    self.count = Int(info.st_size)
  }

  deinit { close(descriptor) }

  /// Fills `buffer` with the bytes at `offset`.
  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(BundleIOError) {
    var done = 0
    while done < buffer.count {
      let result = pread(descriptor, buffer.baseAddress.map { $0 + done }, buffer.count - done, off_t(offset + done))
      if result < 0 {
        if errno == EINTR { continue }
        throw BundleIOError(
          path: path, message: "read failed at byte \(offset + done): \(String(cString: strerror(errno)))")
      }
      if result == 0 {
        throw BundleIOError(path: path, message: "file shrank while being read (byte \(offset + done))")
      }
      done += result
    }
  }
}
