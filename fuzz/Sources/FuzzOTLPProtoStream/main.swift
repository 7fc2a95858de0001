import FuzzSupport
import Manifest

// Fuzz target (c): the Collector file exporter's protobuf stream (and zstd-compressed input)
// through OTLPFileImporter.read(bytes:path:). Inputs that would be read as JSON lines are
// rejected (-1); target (b) covers them.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOTLPProtoStream(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  let first = bytes.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
  if first == UInt8(ascii: "{") { return -1 }
  ImportOracle.run(bytes, path: "fuzz.pb")
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzOTLPProtoStream_main`.
@_cdecl("FuzzOTLPProtoStream_main")
public func fuzzOTLPProtoStreamMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  runFuzzer(argc, argv, fuzzOTLPProtoStream)
}
