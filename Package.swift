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
    .library(name: "CodedErrors", targets: ["CodedErrors"]),
    .library(name: "Manifest", targets: ["Manifest"]),
    .library(name: "EvidenceIO", targets: ["EvidenceIO"]),
    .library(name: "OTLPWire", targets: ["OTLPWire"]),
    .library(name: "OTLPProto", targets: ["OTLPProto"]),
    .library(name: "Keys", targets: ["Keys"]),
    .library(name: "Signing", targets: ["Signing"]),
    .library(name: "Journal", targets: ["Journal"]),
    .library(name: "Ingest", targets: ["Ingest"]),
    .library(name: "Sampling", targets: ["Sampling"]),
    .library(name: "Incidents", targets: ["Incidents"]),
    .library(name: "Receivers", targets: ["Receivers"]),
    .library(name: "Settings", targets: ["Settings"]),
    .library(name: "Capture", targets: ["Capture"]),
    .library(name: "Seal", targets: ["Seal"]),
    .library(name: "Audit", targets: ["Audit"]),
    .library(name: "Verify", targets: ["Verify"]),
    .library(name: "Replay", targets: ["Replay"]),
    .library(name: "Kit", targets: ["Kit"]),
    .library(name: "Report", targets: ["Report"]),
    .library(name: "ObjectStore", targets: ["ObjectStore"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    // Already in the graph through the gRPC transport; named for the per-stream in-flight gate.
    .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    // Already in the graph through the gRPC transport; named for TLS on the HTTP and admin listeners.
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    // The metrics listener: swift-metrics as the API, swift-prometheus as its text-exposition backend.
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
  ],
  targets: [
    // C libraries from Debian's -dev packages; each is imported by exactly one Swift wrapper.
    .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
    .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
    .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
    .target(name: "CCRC32C"),

    // Generated once from the OTLP v1 descriptors (scripts/generate-otlp-swift.sh); never edited by hand.
    .target(
      name: "OTLPProto",
      dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
    ),

    // The OTLP v1 wire reader: one allocation-free pass over an export request that accepts exactly
    // what swift-protobuf decodes and the §6.3 time walk accepts, plus span/log facts and splicing.
    // No dependencies at all, not even Foundation.
    .target(name: "OTLPWire"),
    // A small blocking HTTP/1.1 client (one socket, poll against a deadline), for webhooks and
    // replay: both send from their own threads and want no event loop in between.
    .target(name: "BlockingHTTP"),
    // The one error convention: a stable code, the message with its context, the cause.
    .target(name: "CodedErrors"),

    // The pure evidence model: canonical JSON, the manifest and its schema, segment framing, name
    // rules, limits and reason codes, the §6.3 time walk. No files, no compression.
    .target(name: "Manifest", dependencies: ["OTLPWire", "CCRC32C"]),
    // Evidence I/O: the bundle's tar codec and writer, zstd, SHA-256, safe file handling, and the
    // one routine that turns framed records into a sealed, compressed, hashed segment.
    .target(name: "EvidenceIO", dependencies: ["CodedErrors", "Manifest", "CZstd", "CCrypto"]),
    // What a verifier needs of signatures and nothing more: Ed25519 public keys and key ids, DSSE
    // envelopes, PEM, reading public key files.
    .target(name: "Keys", dependencies: ["EvidenceIO", "Manifest", "CSodium"]),
    // The private half: generating, reading and writing Ed25519 private keys, signing envelopes.
    .target(name: "Signing", dependencies: ["Keys", "EvidenceIO", "Manifest", "CSodium"]),
    // The audit stream's record layout and hash chain, shared by the capture node that writes it
    // and the verifier that checks it.
    .target(
      name: "Audit",
      dependencies: ["EvidenceIO", "Manifest", "OTLPProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
    ),
    // The value syntax shared by every configuration file and flag (sizes, durations, listen
    // addresses) and the one YAML configuration reader every configuration file is walked with.
    .target(name: "Settings", dependencies: [.product(name: "Yams", package: "Yams")]),
    // The segment journal: admitted requests appended as framed records with group commit, segments
    // rotated and sealed, recovery after a crash, the ring, selection of a window for a bundle.
    .target(
      name: "Journal",
      dependencies: [
        "CodedErrors", "Audit", "EvidenceIO", "Manifest", "Settings", .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // Admission: checking an OTLP request (protobuf through OTLPWire, JSON through swift-protobuf),
    // resolving its tenant, redacting it. No networking: receivers and import call it.
    .target(
      name: "Ingest",
      dependencies: [
        "Settings", "Audit", "EvidenceIO", "Manifest", "OTLPProto", "OTLPWire",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Yams", package: "Yams"),
      ]
    ),
    // Tail sampling into the long-term archive: spans and log records read off the wire (OTLPWire),
    // whole traces kept or dropped by policy, the client's bytes of kept items spliced together.
    .target(
      name: "Sampling",
      dependencies: [
        "Journal", "Manifest", "OTLPWire", "Settings", .product(name: "Yams", package: "Yams"),
      ]
    ),
    // Incidents (the durable incident log, start/stop/TTL, the ring pins they hold) and the notify
    // hooks that tell people about them (webhooks, commands).
    .target(
      name: "Incidents",
      dependencies: [
        "CodedErrors",
        "Audit", "BlockingHTTP", "Journal", "EvidenceIO", "Manifest", "Settings",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Yams", package: "Yams"),
      ]
    ),
    // The listeners: OTLP/HTTP (gzip, deflate, zstd), OTLP/gRPC, the admin API with its tokens and
    // gate, the metrics endpoint, TLS, the connection budget; and the metrics they count.
    .target(
      name: "Receivers",
      dependencies: [
        "CodedErrors",
        "Audit", "Incidents", "Ingest", "EvidenceIO", "Manifest", "Settings",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
        .product(name: "Yams", package: "Yams"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ]
    ),
    // The capture service: the composition root that wires receivers, admission, sampling,
    // incidents and the journal together; its configuration; the admin routes; the admin client.
    .target(
      name: "Capture",
      dependencies: [
        "CodedErrors",
        "Audit", "Incidents", "Ingest", "Journal", "Manifest", "Receivers", "Sampling", "Settings",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Yams", package: "Yams"),
      ]
    ),
    // The offline verifier, the only place a `VerifiedBundle` is made, and inspection. Public keys
    // only: it cannot sign.
    .target(name: "Verify", dependencies: ["Audit", "EvidenceIO", "Manifest", "Keys"]),
    // Sealing segments into a signed bundle, co-signing a bundle that verifies, and reading archived
    // OTLP files into segments (import).
    .target(
      name: "Seal",
      dependencies: [
        "CodedErrors",
        "Audit", "EvidenceIO", "Ingest", "Journal", "Keys", "Manifest", "OTLPWire", "Signing", "Verify",
      ]
    ),
    // Building the signed offline kit an air-gapped site installs from (its verifier is in Verify).
    .target(name: "Kit", dependencies: ["Keys", "EvidenceIO", "Manifest", "Signing"]),
    // The self-contained HTML report of a verification: no script, nothing fetched.
    .target(name: "Report", dependencies: ["Audit", "Keys", "Manifest", "Verify"]),
    // Sending a verified bundle to an OTLP endpoint, or writing it as files other tools read.
    .target(
      name: "Replay",
      dependencies: [
        "Audit", "BlockingHTTP", "EvidenceIO", "Manifest", "Verify", "OTLPProto", "OTLPWire",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      ]
    ),

    // Shipping sealed segments to an S3-compatible store: for now AWS Signature Version 4 and the
    // credentials it signs with (HMAC and SHA-256 through EvidenceIO's libcrypto wrapper).
    .target(name: "ObjectStore", dependencies: ["CodedErrors", "EvidenceIO", "Manifest"]),

    .executableTarget(
      name: "StellaForensicsCLI",
      dependencies: [
        "Audit", "Capture", "Incidents", "Ingest", "Journal", "Keys", "Kit", "EvidenceIO", "Manifest", "Receivers",
        "Replay",
        "Report", "Sampling", "Seal", "Settings", "Signing", "Verify",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/stella-forensics"
    ),

    // Hand-encoded OTLP protobuf for tests that must not depend on generated code.
    .target(name: "WireTestSupport", path: "Tests/WireTestSupport"),
    .testTarget(name: "ManifestTests", dependencies: ["CodedErrors", "EvidenceIO", "Manifest", "WireTestSupport"]),
    .testTarget(name: "SigningTests", dependencies: ["Keys", "Signing"]),
    .testTarget(name: "BlockingHTTPTests", dependencies: ["BlockingHTTP"]),
    .testTarget(name: "ObjectStoreTests", dependencies: ["CodedErrors", "EvidenceIO", "ObjectStore"]),
    // Reads Sources/ as text: the dependency rules of docs/architecture.md.
    .testTarget(name: "ArchitectureTests"),
    .testTarget(
      name: "OTLPWireTests",
      dependencies: [
        "OTLPWire", "OTLPProto", "WireTestSupport", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]
    ),
    .testTarget(
      name: "CaptureTests",
      dependencies: [
        "CodedErrors",
        "Audit", "Capture", "Incidents", "Ingest", "Journal", "Keys", "EvidenceIO", "Manifest", "OTLPProto", "OTLPWire",
        "Receivers", "Sampling", "Seal", "Settings", "Signing", "Verify", "WireTestSupport",
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]),
    .testTarget(
      name: "VerifyTests",
      dependencies: ["Audit", "Keys", "Seal", "Verify", "EvidenceIO", "Manifest", "Signing", "WireTestSupport"]),
    .testTarget(name: "KitTests", dependencies: ["Keys", "Kit", "Verify", "EvidenceIO", "Manifest", "Signing"]),
    .testTarget(
      name: "ReportTests",
      dependencies: [
        "Audit", "Keys", "Report", "Seal", "Verify", "EvidenceIO", "Manifest", "Signing", "WireTestSupport",
      ]),
    .testTarget(
      name: "ReplayTests",
      dependencies: ["Keys", "Replay", "Seal", "Verify", "EvidenceIO", "Manifest", "Signing", "WireTestSupport"]),
  ]
)

for target in package.targets where target.type != .system {
  if target.name == "CCRC32C" { continue }
  target.swiftSettings = (target.swiftSettings ?? []) + strictSwiftSettings
}
