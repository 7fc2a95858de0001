// swift-tools-version:6.0
import PackageDescription

// Benchmark helpers: bundle-write-bench for bench/bundle-bench.sh (depends on the root package by
// path so it times the product's own BundleArchiveWriter) and nio-http-floor, the small-batch
// floors of bench/capture-bench.sh (bare SwiftNIO, with and without group-committed appends).
// Build: swift build -c release --package-path bench --scratch-path .build-bench
let package = Package(
  name: "stella-forensics-bench",
  dependencies: [
    .package(name: "stella-forensics", path: ".."),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
  ],
  targets: [
    .executableTarget(
      name: "bundle-write-bench",
      dependencies: [
        .product(name: "EvidenceIO", package: "stella-forensics"),
        .product(name: "Manifest", package: "stella-forensics"),
      ]
    ),
    .executableTarget(
      name: "nio-http-floor",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ]
    ),
  ]
)
