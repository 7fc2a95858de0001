import FuzzSupport
import Ingest
import Manifest

// Fuzz target: OTLPRequestDecoder.decode(body:signal:encoding:) directly, for every signal and
// both encodings. The first input byte chooses them (bits 0-1: signal, bit 2: JSON); the rest is
// the body.
//
// Oracles besides "no crash, no ASan report, no hang":
// - protobuf: a valid body comes back byte for byte (the journal keeps the client's bytes);
// - JSON: the protobuf it becomes is itself valid protobuf of the same signal and comes back
//   unchanged through the protobuf path;
// - every rejection is `malformed` or `payloadTooLarge` with a non-empty message.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOTLPRequestDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  guard let selector = bytes.first else { return 0 }
  let signals: [Signal] = [.traces, .logs, .metrics, .traces]
  let signal = signals[Int(selector & 3)]
  let encoding: OTLPEncoding = selector & 4 == 0 ? .protobuf : .json
  let body = Array(bytes.dropFirst())
  do {
    let request = try OTLPRequestDecoder.decode(body: body, signal: signal, encoding: encoding)
    if encoding == .protobuf, request != body {
      fuzzInvariantFailed("protobuf body of \(body.count) bytes came back as \(request.count) other bytes")
    }
    if encoding == .json {
      do {
        let again = try OTLPRequestDecoder.decode(body: request, signal: signal, encoding: .protobuf)
        if again != request { fuzzInvariantFailed("JSON's protobuf changed on the protobuf path") }
      } catch {
        fuzzInvariantFailed("JSON became protobuf the protobuf path refuses: \(error.message)")
      }
    }
  } catch {
    if error.kind != .malformed && error.kind != .payloadTooLarge {
      fuzzInvariantFailed("unexpected rejection kind \(error.kind): \(error.message)")
    }
    if error.message.isEmpty { fuzzInvariantFailed("rejection without a message") }
  }
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzOTLPRequestDecoder_main`.
@_cdecl("FuzzOTLPRequestDecoder_main")
public func fuzzOTLPRequestDecoderMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  runFuzzer(argc, argv, fuzzOTLPRequestDecoder)
}
