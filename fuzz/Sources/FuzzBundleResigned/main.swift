import EvidenceIO
import FuzzSupport
import Manifest
import Verify

// Fuzz target (d): the input is reshaped into a correctly signed bundle with matching blob
// digests (see ResignedBundle), so mutations reach the manifest schema, member set, zstd,
// segment framing, sequence and OTLP time checks. Same depth-agreement oracle as (a).

private let deepVerifier = BundleVerifier(policy: FuzzKeys.trustPolicy, depth: .deep)
private let quickVerifier = BundleVerifier(policy: FuzzKeys.trustPolicy, depth: .quick)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBundleResigned(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  guard let bundle = ResignedBundle.make(from: input) else { return -1 }
  let deep: VerificationResult
  let quick: VerificationResult
  do {
    deep = try deepVerifier.verify(source: MemoryByteSource(bundle), path: "fuzz")
    quick = try quickVerifier.verify(source: MemoryByteSource(bundle), path: "fuzz")
  } catch {
    fuzzInvariantFailed("a memory source threw \(error)")
  }
  BundleOracle.checkDepthsAgree(deep: deep, quick: quick)
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzBundleResigned_main`.
@_cdecl("FuzzBundleResigned_main")
public func fuzzBundleResignedMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  runFuzzer(argc, argv, fuzzBundleResigned)
}
