internal import Foundation
public import Manifest

/// Where an imported record came from, for messages and provenance.
public struct ImportSource: Sendable, Equatable, CustomStringConvertible {
  /// A position inside an input file.
  public enum Location: Sendable, Equatable {
    /// 1-based line number in an OTLP/JSON file: where the record's JSON document starts.
    case line(Int)
    /// Offset of a record's 4-byte length prefix in a protobuf stream, counted in the
    /// decompressed bytes when the file was zstd-compressed.
    case byteOffset(Int)
  }

  /// The input file's path as the caller gave it.
  public var path: String
  /// Where in that file.
  public var location: Location

  /// Creates a source.
  public init(path: String, location: Location) {
    self.path = path
    self.location = location
  }

  /// `path: line N` or `path: byte offset N`.
  public var description: String {
    switch location {
    case .line(let line): return "\(path): line \(line)"
    case .byteOffset(let offset): return "\(path): byte offset \(offset)"
    }
  }
}

/// One OTLP export request read from a file.
public struct ImportedRecord: Sendable, Equatable {
  /// The request's signal.
  public var signal: Signal
  /// The serialized `Export{Trace,Logs,Metrics}ServiceRequest`: for a protobuf stream the
  /// message's bytes exactly as the file holds them (checked, never re-encoded); for OTLP/JSON
  /// swift-protobuf's deterministic serialization of the decoded request.
  public var request: [UInt8]
  /// Where the request was in the input.
  public var source: ImportSource

  /// Creates a record.
  public init(signal: Signal, request: [UInt8], source: ImportSource) {
    self.signal = signal
    self.request = request
    self.source = source
  }
}

/// The two OTLP file layouts the importer reads.
public enum OTLPFileFormat: Sendable, Equatable {
  /// OTLP/JSON `Export…ServiceRequest` documents one after another: one per line (the
  /// Collector's and the Python SDK's file exporters), or each spread over several lines (the
  /// OTLP specification's examples, hand-made payloads), separated by any JSON whitespace.
  case jsonLines
  /// Repeated `[4-byte big-endian length][serialized Export…ServiceRequest]` (the Collector file
  /// exporter's `proto` format).
  case protoStream
}

/// Why an OTLP input file could not be imported. Names the file and, when known, the line (JSON)
/// or byte offset (protobuf stream).
public struct ImportError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What kind of problem it is; tests and callers match on this, not on the message.
  public enum Code: Sendable, Equatable {
    /// The file could not be read.
    case unreadable
    /// The file starts with the zstd magic but does not decompress (corrupt, truncated, window
    /// too large, or larger than ``OTLPFileImporter/maxDecompressedBytes``).
    case decompression
    /// Empty, or only whitespace.
    case noRecords
    /// OTLP/JSON that is not a sequence of well-formed JSON objects.
    case malformedJSON
    /// A `traceId`/`spanId`/`parentSpanId` that is not hex of the right length.
    case invalidID
    /// A JSON line without a signal key, or with keys of two signals; or a protobuf message that
    /// is not exactly one of the three request types.
    case unknownSignal
    /// Well-formed JSON that is not a valid OTLP request (unknown field, wrong value type, ...).
    case schema
    /// A protobuf stream that ends inside a length prefix or a message.
    case truncated
    /// A protobuf stream message larger than a bundle record may be (import reads files in
    /// bounded memory, so such a message is refused before it is read into memory).
    case recordTooLarge
  }

  /// The kind of problem.
  public var code: Code
  /// The input file's path as the caller gave it.
  public var path: String
  /// The line or byte offset, when the problem has one.
  public var location: ImportSource.Location?
  /// 1-based byte column within the line, for JSON problems whose position is known (then
  /// `location` is the line of the problem, not necessarily of the document's start).
  public var column: Int?
  /// Whether offsets count decompressed bytes (the input was zstd-compressed).
  public var decompressed: Bool
  /// What was wrong.
  public var message: String

  /// Creates an error.
  public init(
    code: Code, path: String, location: ImportSource.Location? = nil, column: Int? = nil,
    decompressed: Bool = false, message: String
  ) {
    self.code = code
    self.path = path
    self.location = location
    self.column = column
    self.decompressed = decompressed
    self.message = message
  }

  /// `path: line L[, column C]: message` or `path: byte offset N[ (decompressed)]: message`.
  public var description: String {
    var place = path
    switch location {
    case .line(let line)?:
      place += ": line \(line)"
      if let column { place += ", column \(column)" }
    case .byteOffset(let offset)?:
      place += ": byte offset \(offset)"
      if decompressed { place += " of the decompressed data" }
    case nil:
      break
    }
    return "\(place): \(message)"
  }
}

/// One record as the streaming reader hands it on: valid only during the call that receives it.
struct ImportedRecordView {
  /// The request's signal.
  var signal: Signal
  /// The serialized request (see ``ImportedRecord/request``), in the reader's buffer.
  var request: UnsafeRawBufferPointer
  /// Where the request was in the input.
  var source: ImportSource
  /// The request's §6.3 time summary when the reader already walked it (the wire check of a
  /// protobuf message gives it); `nil` when it has still to be scanned.
  var checkedTimes: OTLPTimeSummary? = nil
}

/// Reads OTLP files into export requests: OTLP/JSON documents or a length-prefixed protobuf
/// stream, either possibly zstd-compressed.
///
/// Detection: input starting with the zstd magic `28 b5 2f fd` is decompressed as it is read.
/// Then a first non-whitespace byte `{` means OTLP/JSON, anything else a protobuf stream.
///
/// The input is read front to back in pieces and each record is handed on as soon as it is
/// complete, so memory holds one record and one read piece, never the file:
/// - OTLP/JSON: a splitter finds each top-level JSON object however it is laid out (one per
///   line, or spread over several lines, several in a row) while counting lines and columns;
///   each object is decoded and re-serialized deterministically with swift-protobuf, and takes
///   its signal from its top-level key.
/// - Protobuf stream: each length-prefixed message is checked with ``OTLPWireReader`` against
///   the three request types (which accepts exactly what swift-protobuf's decoder does) and
///   handed on byte for byte, never decoded into messages.
public struct OTLPFileImporter {
  /// The most bytes a compressed input held in memory (``read(bytes:path:emptyRequestSignal:)``)
  /// may decompress to (4 GiB), so a decompression bomb fails rather than exhausts memory. Files
  /// read from a path are streamed and have no such limit.
  public static let maxDecompressedBytes = 4 << 30

  /// Reads and decodes the OTLP file at `path`, collecting every record in memory (use
  /// ``EvidenceImport`` to seal large files in bounded memory).
  /// - Returns: the detected format, whether the file was zstd-compressed, and its records in
  ///   file order (never empty).
  /// - Parameter emptyRequestSignal: the signal of protobuf requests that hold no items, in a
  ///   file where no other request tells it (`import --signal`).
  public static func read(
    contentsOf path: String, emptyRequestSignal: Signal? = nil
  ) throws(ImportError) -> (format: OTLPFileFormat, compressed: Bool, records: [ImportedRecord]) {
    let source = try ImportByteSource(path: path, maxDecompressedBytes: Int.max)
    return try collect(source, emptyRequestSignal: emptyRequestSignal)
  }

  /// Decodes OTLP file contents already in memory; `path` only names them in sources and errors.
  public static func read(
    bytes: [UInt8], path: String, emptyRequestSignal: Signal? = nil
  ) throws(ImportError) -> (format: OTLPFileFormat, compressed: Bool, records: [ImportedRecord]) {
    let source = ImportByteSource(bytes: bytes, path: path, maxDecompressedBytes: maxDecompressedBytes)
    return try collect(source, emptyRequestSignal: emptyRequestSignal)
  }

  private static func collect(_ source: ImportByteSource, emptyRequestSignal: Signal?)
    throws(ImportError) -> (format: OTLPFileFormat, compressed: Bool, records: [ImportedRecord])
  {
    var records: [ImportedRecord] = []
    let format: OTLPFileFormat
    do throws(ImportFailure<ImportError>) {
      format = try forEachRecord(in: source, emptyRequestSignal: emptyRequestSignal, maxRecordBytes: Int.max) {
        (record: borrowing ImportedRecordView) throws(ImportError) in
        records.append(
          ImportedRecord(signal: record.signal, request: Array(record.request), source: record.source))
      }
    } catch {
      throw error.importError
    }
    return (format, source.compressed, records)
  }

  /// Reads `source` front to back and hands each record to `body`, in input order.
  /// - Parameters:
  ///   - emptyRequestSignal: see ``read(contentsOf:emptyRequestSignal:)``.
  ///   - maxRecordBytes: a protobuf message longer than this is refused (``ImportError/Code/recordTooLarge``)
  ///     without being read into memory, once the file is known to hold all of it.
  /// - Returns: the detected format.
  static func forEachRecord<Failure: Error>(
    in source: ImportByteSource, emptyRequestSignal: Signal?, maxRecordBytes: Int,
    _ body: (borrowing ImportedRecordView) throws(Failure) -> Void
  ) throws(ImportFailure<Failure>) -> OTLPFileFormat {
    var reader = BufferedInput<Failure>(source: source)
    // The format is told by the first byte that is not JSON whitespace.
    var first: UInt8?
    while first == nil {
      if let index = reader.buffer[reader.position...].firstIndex(where: { !isJSONWhitespace($0) }) {
        first = reader.buffer[index]
      } else if !(try reader.fill()) {
        throw .input(
          ImportError(
            code: .noRecords, path: source.path, decompressed: source.compressed,
            message:
              "no OTLP records (the \(source.compressed ? "decompressed data is" : "file is") empty "
              + "or whitespace)"))
      }
    }
    if first == UInt8(ascii: "{") {
      try readJSON(&reader, body)
      return .jsonLines
    }
    try readProtoStream(
      &reader, emptyRequestSignal: emptyRequestSignal, maxRecordBytes: maxRecordBytes, body)
    return .protoStream
  }

  static func isJSONWhitespace(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
      || byte == UInt8(ascii: "\r")
  }
}

/// Either the input's fault (``ImportError``) or the record consumer's.
enum ImportFailure<Consumer: Error>: Error {
  case input(ImportError)
  case consumer(Consumer)
}

extension ImportFailure where Consumer == ImportError {
  /// Both cases are an ``ImportError``.
  var importError: ImportError {
    switch self {
    case .input(let error), .consumer(let error): return error
    }
  }
}

/// The part of an input read so far and not yet consumed; grows by read pieces, and drops what
/// was consumed before growing, so it holds at most one record plus one piece.
struct BufferedInput<Consumer: Error> {
  let source: ImportByteSource
  /// Bytes of the (decompressed) input from absolute offset `base` on.
  var buffer: [UInt8] = []
  /// Absolute offset of `buffer[0]`.
  var base = 0
  /// Index in `buffer` of the first byte not yet consumed.
  var position = 0

  init(source: ImportByteSource) { self.source = source }

  /// Bytes available from `position` on.
  var available: Int { buffer.count - position }

  /// Reads the next piece; `false` at the end of the input.
  mutating func fill() throws(ImportFailure<Consumer>) -> Bool {
    // Drop the consumed prefix first when it is most of the buffer, so the buffer does not
    // grow with the file; moving the rest is cheap then.
    if position > 0 && position >= buffer.count / 2 {
      buffer.removeSubrange(0..<position)
      base += position
      position = 0
    }
    do {
      return try source.read(into: &buffer)
    } catch {
      throw .input(error)
    }
  }

  /// Makes at least `count` bytes available from `position` on, unless the input ends first.
  /// - Returns: whether they are available.
  mutating func require(_ count: Int) throws(ImportFailure<Consumer>) -> Bool {
    while available < count {
      guard try fill() else { return false }
    }
    return true
  }
}
