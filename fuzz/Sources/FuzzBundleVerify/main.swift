import EvidenceIO
import FuzzSupport
import Manifest
import Verify

// Fuzz target (a): arbitrary bytes as a bundle, verified deep and quick against the fixed trust
// set. Oracle: the two depths agree. Quick mode is §9 steps 1–7.1 for every blob, deep mode runs
// 7.1–7.6 blob by blob, so a bundle deep accepts must pass quick; a bundle quick rejects must be
// rejected by deep; and before step 7 (any code that is not BLOB_*/SEGMENT_*/LIMIT_UNCOMPRESSED
// _SIZE/LIMIT_RATIO/LIMIT_RECORD_SIZE) both must report the same code.

private let deepVerifier = BundleVerifier(policy: FuzzKeys.trustPolicy, depth: .deep)
private let quickVerifier = BundleVerifier(policy: FuzzKeys.trustPolicy, depth: .quick)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBundleVerify(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  let deep: VerificationResult
  let quick: VerificationResult
  do {
    deep = try deepVerifier.verify(source: MemoryByteSource(bytes), path: "fuzz")
    quick = try quickVerifier.verify(source: MemoryByteSource(bytes), path: "fuzz")
  } catch {
    fuzzInvariantFailed("a memory source threw \(error)")
  }
  BundleOracle.checkDepthsAgree(deep: deep, quick: quick)
  return 0
}

/// The program entry: SwiftPM links this executable with `--defsym main=FuzzBundleVerify_main`.
@_cdecl("FuzzBundleVerify_main")
public func fuzzBundleVerifyMain(
  _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
  runFuzzer(argc, argv, fuzzBundleVerify)
}
