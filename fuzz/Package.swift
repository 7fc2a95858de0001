// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for stella-forensics. Not part of the product or of CI: build and run them
// with fuzz/run-fuzz.sh, which passes `-sanitize=fuzzer,address -parse-as-library` to every Swift
// module (the root package's libraries get coverage instrumentation and ASan too). Each
// executable defines `<Target>_main`, the symbol SwiftPM aliases to `main` on Linux, and hands
// control to libFuzzer through LLVMFuzzerRunDriver (see README.md).
let package = Package(
  name: "stella-forensics-fuzz",
  dependencies: [
    .package(name: "stella-forensics", path: ".."),
    // EmbeddedChannel and a no-op Logger for the OTLP/HTTP connection target; the same packages
    // (and versions) the root package resolves.
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    // swift-protobuf's decoder is the differential oracle of FuzzOTLPWireDifferential.
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
  ],
  targets: [
    // Declares libFuzzer's LLVMFuzzerRunDriver (the symbol comes from -sanitize=fuzzer).
    .target(name: "CFuzzerDriver"),
    .target(
      name: "FuzzSupport",
      dependencies: [
        "CFuzzerDriver",
        .product(name: "EvidenceIO", package: "stella-forensics"),
        .product(name: "Manifest", package: "stella-forensics"),
        .product(name: "Keys", package: "stella-forensics"),
        .product(name: "Signing", package: "stella-forensics"),
        .product(name: "Verify", package: "stella-forensics"),
        .product(name: "Ingest", package: "stella-forensics"),
        .product(name: "Seal", package: "stella-forensics"),
      ]
    ),
    .executableTarget(name: "FuzzBundleVerify", dependencies: ["FuzzSupport"]),
    .executableTarget(name: "FuzzBundleResigned", dependencies: ["FuzzSupport"]),
    .executableTarget(name: "FuzzOTLPJSONLines", dependencies: ["FuzzSupport"]),
    .executableTarget(name: "FuzzOTLPProtoStream", dependencies: ["FuzzSupport"]),
    .executableTarget(
      name: "FuzzOTLPHTTP",
      dependencies: [
        "FuzzSupport",
        .product(name: "Receivers", package: "stella-forensics"),
        .product(name: "Ingest", package: "stella-forensics"),
        .product(name: "Manifest", package: "stella-forensics"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .executableTarget(
      name: "FuzzOTLPRequestDecoder",
      dependencies: ["FuzzSupport", .product(name: "Ingest", package: "stella-forensics")]
    ),
    // swift-protobuf's decoder is one of its oracles: every redacted request must decode.
    .executableTarget(
      name: "FuzzRedactor",
      dependencies: [
        "FuzzSupport",
        .product(name: "Ingest", package: "stella-forensics"),
        .product(name: "OTLPProto", package: "stella-forensics"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]
    ),
    // Only the pure reader and the generated messages, so it builds without Capture and NIO.
    .executableTarget(
      name: "FuzzOTLPWireDifferential",
      dependencies: [
        "CFuzzerDriver",
        .product(name: "OTLPWire", package: "stella-forensics"),
        .product(name: "OTLPProto", package: "stella-forensics"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]
    ),
  ]
)
