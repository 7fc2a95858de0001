internal import Manifest
internal import OTLPWire

/// The Collector file exporter's `format: proto` stream: repeated `[4-byte big-endian
/// length][serialized Export…ServiceRequest]`.
///
/// Each message is checked in place with ``OTLPWireReader/check(_:signal:tenantAttribute:refusingUnknownFields:)``
/// against the three request types and handed on as the bytes the file holds; nothing is decoded
/// into messages. A type fits when the reader accepts the message (it accepts and refuses
/// exactly what swift-protobuf's decoder does) and finds no unknown field in it: the rule the
/// decoding import used (decode as each type, and count a tree with unknown fields as no fit).
extension OTLPFileImporter {
  /// A request that holds no item fits every signal; it waits for the file to tell its signal.
  private struct Undecided {
    var offset: Int
    var request: [UInt8]
    var candidates: [Signal]
  }

  /// The signal bookkeeping of one file. A protobuf stream holds one signal (the Collector's file
  /// exporter and `export` write one file per signal), so a request with no span, log record or
  /// metric takes the signal of the file's other requests, or the operator's `--signal` when the
  /// file has nothing else; in a file that mixes signals it cannot be placed.
  private struct FileSignals {
    var seen: [Signal] = []
    /// Item-less requests read before any request told the signal, in file order.
    var waiting: [Undecided] = []
    /// The first item-less request of the file, which an error about such requests names.
    var firstUndecided: (offset: Int, count: Int, candidates: [Signal])?
  }

  static func readProtoStream<Failure: Error>(
    _ reader: inout BufferedInput<Failure>, emptyRequestSignal: Signal?, maxRecordBytes: Int,
    _ body: (borrowing ImportedRecordView) throws(Failure) -> Void
  ) throws(ImportFailure<Failure>) {
    var signals = FileSignals()
    while true {
      guard try reader.require(1) else { break }
      let offset = reader.base + reader.position
      guard try reader.require(4) else {
        throw .input(
          truncated(
            reader.source, at: offset, "truncated length prefix (\(reader.available) of 4 bytes)"))
      }
      let p = reader.position
      let length =
        Int(reader.buffer[p]) << 24 | Int(reader.buffer[p + 1]) << 16 | Int(reader.buffer[p + 2]) << 8
        | Int(reader.buffer[p + 3])
      if length > maxRecordBytes {
        try skipOversized(&reader, length: length, at: offset, limit: maxRecordBytes)
      }
      guard try reader.require(4 + length) else {
        throw .input(
          truncated(
            reader.source, at: offset,
            "truncated message: the length prefix says \(length) bytes, \(reader.available - 4) remain"))
      }
      let start = reader.position + 4
      let outcome: Result<Void, ImportFailure<Failure>> = reader.buffer.withUnsafeBytes { all in
        let message = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
        do throws(ImportFailure<Failure>) {
          try place(
            message, at: offset, signals: &signals, reader: reader, emptyRequestSignal: emptyRequestSignal, body)
          return .success(())
        } catch {
          return .failure(error)
        }
      }
      try outcome.get()
      reader.position = start + length
    }
    // Requests still waiting: nothing in the file told their signal.
    guard let first = signals.waiting.first else { return }
    guard let emptyRequestSignal, first.candidates.contains(emptyRequestSignal) else {
      throw .input(
        undecided(
          reader.source, at: first.offset, count: first.request.count, candidates: first.candidates,
          hint: "; nothing else in the file tells the signal: give --signal to import such requests"))
    }
    try emitWaiting(signals.waiting, as: emptyRequestSignal, reader: reader, body)
  }

  /// Hands on requests that waited for their file's signal, in file order, as `signal`.
  private static func emitWaiting<Failure: Error>(
    _ waiting: [Undecided], as signal: Signal, reader: BufferedInput<Failure>,
    _ body: (borrowing ImportedRecordView) throws(Failure) -> Void
  ) throws(ImportFailure<Failure>) {
    for request in waiting {
      guard request.candidates.contains(signal) else {
        throw .input(
          undecided(
            reader.source, at: request.offset, count: request.request.count, candidates: request.candidates,
            hint: "; nothing else in the file tells the signal: give --signal to import such requests"))
      }
      try emit(request.request, signal: signal, at: request.offset, path: reader.source.path, body)
    }
  }

  /// Classifies one message and hands it on, or keeps it waiting for its file's signal.
  private static func place<Failure: Error>(
    _ message: UnsafeRawBufferPointer, at offset: Int, signals: inout FileSignals, reader: BufferedInput<Failure>,
    emptyRequestSignal: Signal?, _ body: (borrowing ImportedRecordView) throws(Failure) -> Void
  ) throws(ImportFailure<Failure>) {
    let path = reader.source.path
    var fits: [Signal] = []
    // The check's §6.3 time summary per fitting signal, so the segment need not walk it again.
    var timesBySignal: [OTLPTimeSummary] = []
    var reasons: [String] = []
    for signal in Signal.allCases {
      do {
        // A request type fits when the message is valid as it with no unknown field anywhere,
        // the rule that tells a log record from a span whose fields happen to parse.
        let facts = try OTLPWireReader.check(message, signal: signal.wireSignal, refusingUnknownFields: true)
        fits.append(signal)
        timesBySignal.append(facts.times)
      } catch {
        reasons.append("as \(signal.rawValue): \(error)")
      }
    }
    guard let only = fits.first else {
      throw .input(
        ImportError(
          code: .unknownSignal, path: path, location: .byteOffset(offset), decompressed: reader.source.compressed,
          message:
            "\(message.count)-byte message: not an OTLP ExportTrace/Logs/MetricsServiceRequest ("
            + reasons.joined(separator: "; ") + ")"))
    }
    if fits.count == 1 {
      if !signals.seen.contains(only) {
        signals.seen.append(only)
        if signals.seen.count > 1, let first = signals.firstUndecided {
          throw .input(
            undecided(
              reader.source, at: first.offset, count: first.count, candidates: first.candidates,
              hint: "; the file mixes signals, so nothing tells this one"))
        }
      }
      // Requests that waited for this one take its signal, in file order before it.
      let waiting = signals.waiting
      signals.waiting = []
      try emitWaiting(waiting, as: only, reader: reader, body)
      try emit(message, signal: only, at: offset, path: path, times: timesBySignal[0], body)
      return
    }
    if signals.firstUndecided == nil { signals.firstUndecided = (offset, message.count, fits) }
    switch signals.seen.count {
    case 0:
      signals.waiting.append(Undecided(offset: offset, request: Array(message), candidates: fits))
    case 1:
      guard let index = fits.firstIndex(of: signals.seen[0]) else {
        throw .input(
          undecided(
            reader.source, at: offset, count: message.count, candidates: fits,
            hint: "; nothing else in the file tells the signal: give --signal to import such requests"))
      }
      try emit(message, signal: signals.seen[0], at: offset, path: path, times: timesBySignal[index], body)
    default:
      throw .input(
        undecided(
          reader.source, at: offset, count: message.count, candidates: fits,
          hint: "; the file mixes signals, so nothing tells this one"))
    }
  }

  private static func emit<Failure: Error>(
    _ request: UnsafeRawBufferPointer, signal: Signal, at offset: Int, path: String, times: OTLPTimeSummary? = nil,
    _ body: (borrowing ImportedRecordView) throws(Failure) -> Void
  ) throws(ImportFailure<Failure>) {
    do {
      try body(
        ImportedRecordView(
          signal: signal, request: request, source: ImportSource(path: path, location: .byteOffset(offset)),
          checkedTimes: times))
    } catch {
      throw .consumer(error)
    }
  }

  private static func emit<Failure: Error>(
    _ request: [UInt8], signal: Signal, at offset: Int, path: String,
    _ body: (borrowing ImportedRecordView) throws(Failure) -> Void
  ) throws(ImportFailure<Failure>) {
    let outcome: Result<Void, ImportFailure<Failure>> = request.withUnsafeBytes { raw in
      do throws(ImportFailure<Failure>) {
        try emit(raw, signal: signal, at: offset, path: path, body)
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try outcome.get()
  }

  /// A message longer than a record may be: read past it without keeping it, so a truncated file
  /// is still reported as truncated, then refuse it.
  private static func skipOversized<Failure: Error>(
    _ reader: inout BufferedInput<Failure>, length: Int, at offset: Int, limit: Int
  ) throws(ImportFailure<Failure>) {
    var left = 4 + length
    while left > 0 {
      if reader.available == 0 {
        guard try reader.fill() else {
          throw .input(
            truncated(
              reader.source, at: offset,
              "truncated message: the length prefix says \(length) bytes, \(length - left) remain"))
        }
      }
      let step = min(left, reader.available)
      reader.position += step
      left -= step
    }
    throw .input(
      ImportError(
        code: .recordTooLarge, path: reader.source.path, location: .byteOffset(offset),
        decompressed: reader.source.compressed,
        message: "\(length)-byte message exceeds the record limit of \(limit) bytes"))
  }

  private static func truncated(_ source: ImportByteSource, at offset: Int, _ message: String) -> ImportError {
    ImportError(
      code: .truncated, path: source.path, location: .byteOffset(offset),
      decompressed: source.compressed, message: message)
  }

  private static func undecided(
    _ source: ImportByteSource, at offset: Int, count: Int, candidates: [Signal], hint: String
  ) -> ImportError {
    ImportError(
      code: .unknownSignal, path: source.path, location: .byteOffset(offset),
      decompressed: source.compressed,
      message:
        "\(count)-byte message: cannot tell the signal: the request decodes cleanly as "
        + candidates.map(\.rawValue).joined(separator: ", ")
        + " (it holds no span, log record or metric)" + hint)
  }
}
