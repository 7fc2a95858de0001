// swift-tools-version:6.0
import PackageDescription

// One set of strict settings for every Swift target (the swift-log pattern).
let strictSwiftSettings: [SwiftSetting] = [
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
  name: "stella-forensics",
  products: [
    .executable(name: "stella-forensics", targets: ["StellaForensicsCLI"]),
    .library(name: "Manifest", targets: ["Manifest"]),
    .library(name: "Signing", targets: ["Signing"]),
    .library(name: "Capture", targets: ["Capture"]),
    .library(name: "Verify", targets: ["Verify"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
  ],
  targets: [
    // C libraries from Debian's -dev packages; each is imported by exactly one Swift wrapper.
    .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
    .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
    .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
    .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
    .target(name: "CCRC32C"),

    // Generated once from the OTLP v1 descriptors (scripts/generate-otlp-swift.sh); never edited by hand.
    .target(
      name: "OTLPProto",
      dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
    ),

    // The pure evidence model: canonical JSON, manifest, segment framing, tar codec, digests, zstd.
    .target(name: "Manifest", dependencies: ["CZstd", "CCrypto", "CCRC32C", "CArchive"]),
    // Ed25519 keys and signatures, key files, DSSE envelopes.
    .target(name: "Signing", dependencies: ["Manifest", "CSodium"]),
    // Receiving OTLP (today: importing OTLP files) and writing segments.
    .target(
      name: "Capture",
      dependencies: ["Manifest", "OTLPProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
    ),
    // The offline verifier, the only place a `VerifiedBundle` is made, and sealing/co-signing.
    .target(name: "Verify", dependencies: ["Manifest", "Signing"]),

    .executableTarget(
      name: "StellaForensicsCLI",
      dependencies: [
        "Manifest", "Signing", "Capture", "Verify",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Sources/stella-forensics"
    ),

    // Hand-encoded OTLP protobuf for tests that must not depend on generated code.
    .target(name: "WireTestSupport", path: "Tests/WireTestSupport"),
    .testTarget(name: "ManifestTests", dependencies: ["Manifest", "WireTestSupport"]),
    .testTarget(name: "SigningTests", dependencies: ["Signing"]),
    .testTarget(name: "CaptureTests", dependencies: ["Capture", "Manifest", "OTLPProto", "WireTestSupport"]),
    .testTarget(name: "VerifyTests", dependencies: ["Verify", "Manifest", "Signing", "WireTestSupport"]),
  ]
)

for target in package.targets where target.type != .system {
  if target.name == "CCRC32C" { continue }
  target.swiftSettings = (target.swiftSettings ?? []) + strictSwiftSettings
}
