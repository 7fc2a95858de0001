internal import Ingest
internal import Manifest

/// OTLP/JSON input: a sequence of top-level JSON objects, each one `Export…ServiceRequest`.
///
/// The splitter only finds where each object ends (strings, escapes and bracket nesting), so
/// one request per line, a document spread over many lines, and several documents in a row all
/// read the same way; the JSON itself is judged by ``OTLPJSON``, whose error column (a byte
/// offset in the document) is turned back into a line and column of the file.
extension OTLPFileImporter {
  /// Where a document starts, and the line bookkeeping needed to place offsets inside it.
  private struct DocumentStart {
    /// 1-based line of the document's first byte.
    var line: Int
    /// 1-based byte column of its first byte.
    var column: Int
  }

  static func readJSON<Failure: Error>(
    _ reader: inout BufferedInput<Failure>, _ body: (borrowing ImportedRecordView) throws(Failure) -> Void
  ) throws(ImportFailure<Failure>) {
    let path = reader.source.path
    var line = 1
    // Absolute offset of the first byte of `line`.
    var lineStart = 0
    while true {
      guard try reader.require(1) else { return }
      let byte = reader.buffer[reader.position]
      if isJSONWhitespace(byte) {
        if byte == UInt8(ascii: "\n") {
          line += 1
          lineStart = reader.base + reader.position + 1
        }
        reader.position += 1
        continue
      }
      let start = DocumentStart(line: line, column: reader.base + reader.position - lineStart + 1)
      // The document's extent in `reader.buffer`: from `reader.position` to `end`.
      var end: Int
      if byte == UInt8(ascii: "{") {
        end = try scanObject(&reader, line: &line, lineStart: &lineStart)
      } else {
        // Not an object: hand the rest of the line to the decoder, as one-per-line reading did,
        // so the error reads the same.
        end = reader.position
        while true {
          if end == reader.buffer.count {
            let offset = end - reader.position
            // `fill` may drop the consumed prefix even when it reads nothing more, so `end` is
            // placed again before it is used either way.
            let more = try reader.fill()
            end = reader.position + offset
            guard more else { break }
            continue
          }
          if reader.buffer[end] == UInt8(ascii: "\n") { break }
          end += 1
        }
      }
      let document = reader.buffer[reader.position..<end]
      let decoded: (signal: Signal, request: [UInt8])
      do {
        decoded = try OTLPJSON.decodeRequest(document)
      } catch {
        throw .input(
          jsonError(error, document: document, start: start, path: path, compressed: reader.source.compressed))
      }
      guard byte == UInt8(ascii: "{") else {
        throw .input(
          ImportError(
            code: .malformedJSON, path: path, location: .line(start.line), column: start.column,
            decompressed: reader.source.compressed, message: "malformed JSON: expected an object"))
      }
      let source = ImportSource(path: path, location: .line(start.line))
      let outcome: Result<Void, Failure> = decoded.request.withUnsafeBytes { request in
        do throws(Failure) {
          try body(ImportedRecordView(signal: decoded.signal, request: request, source: source))
          return .success(())
        } catch {
          return .failure(error)
        }
      }
      if case .failure(let error) = outcome { throw .consumer(error) }
      reader.position = end
    }
  }

  /// Finds the end of the object that starts at `reader.position`, reading more input as needed,
  /// and counts the lines it spans.
  /// - Returns: the index in `reader.buffer` just past the object's closing brace; or where the
  ///   object visibly went wrong (a closing bracket of the wrong kind, nesting deeper than
  ///   ``OTLPJSON/maxNesting``), or the end of the input, so that the decoder reports the error.
  private static func scanObject<Failure: Error>(
    _ reader: inout BufferedInput<Failure>, line: inout Int, lineStart: inout Int
  ) throws(ImportFailure<Failure>) -> Int {
    var closers: [UInt8] = []
    var inString = false
    var escaped = false
    // Offset from the document start, so it survives the buffer moving when more is read.
    var offset = 0
    while true {
      if reader.position + offset == reader.buffer.count {
        guard try reader.fill() else { return reader.buffer.count }
        continue
      }
      let index = reader.position + offset
      let byte = reader.buffer[index]
      offset += 1
      if byte == UInt8(ascii: "\n") {
        // A raw newline inside a string is malformed; it still starts a line for positions.
        line += 1
        lineStart = reader.base + index + 1
      }
      if inString {
        if escaped {
          escaped = false
        } else if byte == UInt8(ascii: "\\") {
          escaped = true
        } else if byte == UInt8(ascii: "\"") {
          inString = false
        }
        continue
      }
      switch byte {
      case UInt8(ascii: "\""):
        inString = true
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        closers.append(byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]"))
        if closers.count > OTLPJSON.maxNesting { return index + 1 }
      case UInt8(ascii: "}"), UInt8(ascii: "]"):
        guard closers.last == byte else { return index + 1 }
        closers.removeLast()
        if closers.isEmpty { return index + 1 }
      default:
        break
      }
    }
  }

  /// The decoder's error placed in the file: its column is a byte offset in `document`.
  private static func jsonError(
    _ error: OTLPJSONError, document: ArraySlice<UInt8>, start: DocumentStart, path: String,
    compressed: Bool
  ) -> ImportError {
    let code: ImportError.Code
    switch error.kind {
    case .syntax: code = .malformedJSON
    case .invalidID: code = .invalidID
    case .noSignal, .conflictingSignals: code = .unknownSignal
    case .schema: code = .schema
    }
    var line = start.line
    var column: Int?
    if let offset = error.column {
      // Count the lines before the offending byte; a column past the end (a truncated
      // document) lands just after its last byte.
      let target = document.startIndex + min(max(offset - 1, 0), document.count)
      var lineBegin = document.startIndex
      var index = document.startIndex
      while index < target {
        if document[index] == UInt8(ascii: "\n") {
          line += 1
          lineBegin = index + 1
        }
        index += 1
      }
      column = target - lineBegin + (line == start.line ? start.column : 1)
    }
    return ImportError(
      code: code, path: path, location: .line(line), column: column,
      decompressed: compressed, message: error.message)
  }
}
