// swift-tools-version:6.0
import PackageDescription

// Benchmark helpers for bench/bundle-bench.sh. Depends on the root package by path so the
// benchmark times the product's own code (BundleArchiveWriter) without touching Package.swift.
// Build: swift build -c release --package-path bench --scratch-path .build-bench
let package = Package(
  name: "stella-forensics-bench",
  dependencies: [.package(name: "stella-forensics", path: "..")],
  targets: [
    .executableTarget(
      name: "bundle-write-bench",
      dependencies: [.product(name: "Manifest", package: "stella-forensics")]
    )
  ]
)
