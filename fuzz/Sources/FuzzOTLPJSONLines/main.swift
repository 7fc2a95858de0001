import FuzzSupport
import Manifest

// Fuzz target (b): OTLP/JSON lines through OTLPFileImporter.read(bytes:path:). Inputs the
// importer would route to the protobuf reader (first non-whitespace byte not `{`) or to zstd are
// rejected (-1) so they do not enter this target's corpus; target (c) covers those paths.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOTLPJSONLines(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  let first = bytes.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
  guard first == UInt8(ascii: "{") else { return -1 }
  ImportOracle.run(bytes, path: "fuzz.jsonl")
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzOTLPJSONLines_main`.
@_cdecl("FuzzOTLPJSONLines_main")
public func fuzzOTLPJSONLinesMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  runFuzzer(argc, argv, fuzzOTLPJSONLines)
}
