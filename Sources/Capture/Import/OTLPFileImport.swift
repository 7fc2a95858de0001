internal import Foundation
public import Manifest

/// Where an imported record came from, for messages and provenance.
public struct ImportSource: Sendable, Equatable, CustomStringConvertible {
  /// A position inside an input file.
  public enum Location: Sendable, Equatable {
    /// 1-based line number of an OTLP/JSON-lines file.
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
  /// The deterministic protobuf serialization of the `Export{Trace,Logs,Metrics}ServiceRequest`,
  /// the same bytes for the same request whatever its input encoding was.
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
  /// OTLP/JSON, one `Export…ServiceRequest` object per line (the Collector's and the Python
  /// SDK's file exporters).
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
    /// A JSON line that is not a single well-formed JSON object.
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
  }

  /// The kind of problem.
  public var code: Code
  /// The input file's path as the caller gave it.
  public var path: String
  /// The line or byte offset, when the problem has one.
  public var location: ImportSource.Location?
  /// 1-based byte column within the line, for JSON problems whose position is known.
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

/// Reads OTLP files into export requests: OTLP/JSON lines or a length-prefixed protobuf stream,
/// either possibly zstd-compressed.
///
/// Detection: input starting with the zstd magic `28 b5 2f fd` is decompressed first. Then a
/// first non-whitespace byte `{` means JSON lines, anything else a protobuf stream. JSON lines take
/// the signal from each line's top-level key; protobuf messages are classified by decoding (see
/// `OTLPProtoSignal`). Every record is re-serialized with swift-protobuf's deterministic
/// serialization, so the same requests give the same bytes whichever encoding carried them.
public struct OTLPFileImporter {
  /// The most bytes a compressed input may decompress to (4 GiB); beyond that the import fails
  /// rather than exhaust memory on a decompression bomb.
  public static let maxDecompressedBytes = 4 << 30

  /// Reads and decodes the OTLP file at `path`.
  /// - Returns: the detected format, whether the file was zstd-compressed, and its records in
  ///   file order (never empty).
  /// - Parameter emptyRequestSignal: the signal of protobuf requests that hold no items, in a
  ///   file where no other request tells it (`import --signal`).
  public static func read(
    contentsOf path: String, emptyRequestSignal: Signal? = nil
  ) throws(ImportError) -> (format: OTLPFileFormat, compressed: Bool, records: [ImportedRecord]) {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw ImportError(
        code: .unreadable, path: path,
        message: "cannot read the file: \(error.localizedDescription)")
    }
    return try read(bytes: [UInt8](data), path: path, emptyRequestSignal: emptyRequestSignal)
  }

  /// Decodes OTLP file contents already in memory; `path` only names them in sources and errors.
  public static func read(
    bytes: [UInt8], path: String, emptyRequestSignal: Signal? = nil
  ) throws(ImportError) -> (format: OTLPFileFormat, compressed: Bool, records: [ImportedRecord]) {
    let compressed = Zstd.hasFrameMagic(bytes)
    var content = bytes
    if compressed {
      do {
        content = try Zstd.decompress(bytes, maxOutputBytes: maxDecompressedBytes)
      } catch {
        throw ImportError(
          code: .decompression, path: path, message: "cannot decompress zstd input: \(error)")
      }
    }
    guard let first = content.first(where: { !isJSONWhitespace($0) }) else {
      throw ImportError(
        code: .noRecords, path: path, decompressed: compressed,
        message:
          "no OTLP records (the \(compressed ? "decompressed data is" : "file is") empty "
          + "or whitespace)"
      )
    }
    if first == UInt8(ascii: "{") {
      return (
        .jsonLines, compressed, try readJSONLines(content, path: path, compressed: compressed)
      )
    }
    return (
      .protoStream, compressed,
      try readProtoStream(content, path: path, compressed: compressed, emptyRequestSignal: emptyRequestSignal)
    )
  }

  private static func isJSONWhitespace(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
      || byte == UInt8(ascii: "\r")
  }

  private static func readJSONLines(
    _ content: [UInt8], path: String, compressed: Bool
  ) throws(ImportError) -> [ImportedRecord] {
    var records: [ImportedRecord] = []
    var lineNumber = 0
    var start = 0
    while start < content.count {
      lineNumber += 1
      let end = content[start...].firstIndex(of: UInt8(ascii: "\n")) ?? content.count
      let line = content[start..<end]
      start = end + 1
      // Blank lines (a trailing newline, CRLF leftovers) are not records.
      if line.allSatisfy(isJSONWhitespace) { continue }
      do {
        let decoded = try OTLPJSON.decodeRequest(line)
        records.append(
          ImportedRecord(
            signal: decoded.signal, request: decoded.request,
            source: ImportSource(path: path, location: .line(lineNumber))))
      } catch {
        let code: ImportError.Code
        switch error.kind {
        case .syntax: code = .malformedJSON
        case .invalidID: code = .invalidID
        case .noSignal, .conflictingSignals: code = .unknownSignal
        case .schema: code = .schema
        }
        throw ImportError(
          code: code, path: path, location: .line(lineNumber), column: error.column,
          decompressed: compressed, message: error.message)
      }
    }
    return records
  }

  private static func readProtoStream(
    _ content: [UInt8], path: String, compressed: Bool, emptyRequestSignal: Signal?
  ) throws(ImportError) -> [ImportedRecord] {
    var frames: [(offset: Int, body: [UInt8])] = []
    var offset = 0
    while offset < content.count {
      let remaining = content.count - offset
      guard remaining >= 4 else {
        throw ImportError(
          code: .truncated, path: path, location: .byteOffset(offset), decompressed: compressed,
          message: "truncated length prefix (\(remaining) of 4 bytes)")
      }
      let length =
        Int(content[offset]) << 24 | Int(content[offset + 1]) << 16 | Int(content[offset + 2]) << 8
        | Int(content[offset + 3])
      let bodyStart = offset + 4
      guard length <= content.count - bodyStart else {
        throw ImportError(
          code: .truncated, path: path, location: .byteOffset(offset), decompressed: compressed,
          message:
            "truncated message: the length prefix says \(length) bytes, "
            + "\(content.count - bodyStart) remain"
        )
      }
      frames.append((offset, Array(content[bodyStart..<(bodyStart + length)])))
      offset = bodyStart + length
    }
    // A request with no span, log record or metric fits every signal. A protobuf stream holds one
    // signal (the Collector's file exporter and `export` write one file per signal), so such a
    // request takes the signal of the file's other requests, or the operator's `--signal` when
    // the file has nothing else.
    var classified: [Result<(signal: Signal, request: [UInt8]), OTLPProtoSignalError>] = []
    var fileSignals: Set<Signal> = []
    for frame in frames {
      do {
        let decoded = try OTLPProtoSignal.classify(frame.body)
        fileSignals.insert(decoded.signal)
        classified.append(.success(decoded))
      } catch {
        classified.append(.failure(error))
      }
    }
    let ambiguousAs = fileSignals.count == 1 ? fileSignals.first : (fileSignals.isEmpty ? emptyRequestSignal : nil)
    var records: [ImportedRecord] = []
    for (frame, outcome) in zip(frames, classified) {
      do throws(OTLPProtoSignalError) {
        let decoded: (signal: Signal, request: [UInt8])
        switch outcome {
        case .success(let known): decoded = known
        case .failure(let failure) where failure.candidates.isEmpty: throw failure
        case .failure: decoded = try OTLPProtoSignal.classify(frame.body, ambiguousAs: ambiguousAs)
        }
        records.append(
          ImportedRecord(
            signal: decoded.signal, request: decoded.request,
            source: ImportSource(path: path, location: .byteOffset(frame.offset))))
      } catch {
        let hint =
          error.candidates.isEmpty
          ? ""
          : fileSignals.count > 1
            ? "; the file mixes signals, so nothing tells this one"
            : "; nothing else in the file tells the signal: give --signal to import such requests"
        throw ImportError(
          code: .unknownSignal, path: path, location: .byteOffset(frame.offset), decompressed: compressed,
          message: "\(frame.body.count)-byte message: \(error.message)\(hint)")
      }
    }
    return records
  }
}
