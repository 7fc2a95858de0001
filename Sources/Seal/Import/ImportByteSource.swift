internal import EvidenceIO
internal import Manifest

#if canImport(Glibc)
  import Glibc
#endif

/// The bytes of one import input, read front to back in pieces: a file read with `read(2)`, or
/// bytes already in memory; zstd-compressed input is decompressed as it is read.
///
/// Import must run in memory bounded by a few segments whatever the input's size, so nothing
/// here holds more than one read piece and the decompressor's window; the caller decides how
/// much of what it was handed to keep.
final class ImportByteSource {
  /// How much raw input one `read(2)` asks for.
  static let readStep = 1 << 20

  private enum Origin {
    case file(Int32)
    case memory([UInt8], consumed: Int)
  }

  /// The path that names the input in errors.
  let path: String
  /// Whether the input starts with the zstd magic and is being decompressed.
  private(set) var compressed = false

  private var origin: Origin
  private var decompressor: ZstdStreamDecompressor?
  private let maxDecompressedBytes: Int
  /// The `read(2)` buffer, reused.
  private var raw: [UInt8]
  /// Whether the first bytes were looked at for the zstd magic.
  private var started = false
  /// Whether the end of the input was reached (and a compressed input's end checked).
  private var ended = false

  /// Opens the file at `path` for reading.
  /// - Parameter maxDecompressedBytes: the cap on a compressed input's decompressed size.
  init(path: String, maxDecompressedBytes: Int) throws(ImportError) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw ImportError(
        code: .unreadable, path: path,
        message: "cannot read the file: \(String(cString: strerror(errno)))")
    }
    self.path = path
    self.origin = .file(fd)
    self.maxDecompressedBytes = maxDecompressedBytes
    self.raw = []
  }

  /// Reads `bytes` already in memory; `path` only names them in errors.
  init(bytes: [UInt8], path: String, maxDecompressedBytes: Int) {
    self.path = path
    self.origin = .memory(bytes, consumed: 0)
    self.maxDecompressedBytes = maxDecompressedBytes
    self.raw = []
  }

  deinit {
    if case .file(let fd) = origin { close(fd) }
  }

  /// Appends the next piece of the (decompressed) input to `buffer`.
  /// - Returns: `false` once the input is exhausted and, if compressed, ended cleanly at a frame
  ///   boundary; then nothing was appended.
  func read(into buffer: inout [UInt8]) throws(ImportError) -> Bool {
    while !ended {
      let piece = try nextRaw()
      if !started {
        started = true
        // The magic decides once, on the file's first bytes; a read may return fewer than four.
        var head = piece ?? []
        while head.count < 4, let more = try nextRaw() { head += more }
        compressed = Zstd.hasFrameMagic(head)
        if compressed {
          do {
            decompressor = try ZstdStreamDecompressor(maxOutputBytes: maxDecompressedBytes)
          } catch {
            throw decompressionError(error)
          }
        }
        if try hand(head, into: &buffer) { return true }
        continue
      }
      guard let piece else {
        ended = true
        if let decompressor {
          do {
            try decompressor.finish()
          } catch {
            throw decompressionError(error)
          }
        }
        return false
      }
      if try hand(piece, into: &buffer) { return true }
    }
    return false
  }

  /// Passes raw bytes on, decompressing them when needed. Returns whether anything was appended
  /// (a compressed piece may produce no output yet).
  private func hand(_ piece: [UInt8], into buffer: inout [UInt8]) throws(ImportError) -> Bool {
    guard !piece.isEmpty else { return false }
    guard let decompressor else {
      buffer.append(contentsOf: piece)
      return true
    }
    let before = buffer.count
    let outcome: Result<Void, ZstdError> = piece.withUnsafeBytes { input in
      do throws(ZstdError) {
        try decompressor.decompress(input) { output in buffer.append(contentsOf: output) }
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    if case .failure(let error) = outcome { throw decompressionError(error) }
    return buffer.count > before
  }

  private func decompressionError(_ error: ZstdError) -> ImportError {
    ImportError(code: .decompression, path: path, message: "cannot decompress zstd input: \(error)")
  }

  /// The next raw piece, or `nil` at the end of the input.
  private func nextRaw() throws(ImportError) -> [UInt8]? {
    switch origin {
    case .memory(let bytes, let consumed):
      guard consumed < bytes.count else { return nil }
      let end = min(bytes.count, consumed + Self.readStep)
      origin = .memory(bytes, consumed: end)
      // The first piece of an in-memory input is all of it when small (tests, single requests).
      return Array(bytes[consumed..<end])
    case .file(let fd):
      if raw.count != Self.readStep { raw = [UInt8](repeating: 0, count: Self.readStep) }
      while true {
        let count = raw.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 { return Array(raw[0..<count]) }
        if count == 0 { return nil }
        if errno == EINTR { continue }
        throw ImportError(
          code: .unreadable, path: path, message: "cannot read the file: \(String(cString: strerror(errno)))")
      }
    }
  }
}

@available(*, unavailable)
extension ImportByteSource: Sendable {}
