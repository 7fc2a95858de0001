import Foundation
import Testing

/// The package's dependency rules (docs/architecture.md), checked against the `import` lines of
/// every file under `Sources/`. The compiler only knows what Package.swift allows; these rules say
/// what the architecture allows, so a dependency added to Package.swift for convenience still fails
/// here until the rule (and the document) is changed on purpose.
enum DependencyRules {
  /// First-party modules each module may import. A first-party import not listed is a violation.
  static let allowedFirstParty: [String: Set<String>] = [
    "OTLPWire": [],
    "OTLPProto": [],
    "BlockingHTTP": [],
    "CodedErrors": [],
    "Manifest": ["OTLPWire", "CCRC32C"],
    "EvidenceIO": ["CodedErrors", "Manifest", "CZstd", "CCrypto"],
    "Keys": ["EvidenceIO", "Manifest", "CSodium"],
    "Signing": ["Keys", "EvidenceIO", "Manifest", "CSodium"],
    "Audit": ["EvidenceIO", "Manifest", "OTLPProto"],
    "Ingest": ["Audit", "EvidenceIO", "Manifest", "OTLPProto", "OTLPWire", "Settings"],
    "Settings": [],
    "Journal": ["CodedErrors", "Audit", "EvidenceIO", "Manifest", "Settings"],
    "Sampling": ["Journal", "Manifest", "OTLPWire", "Settings"],
    "Incidents": ["CodedErrors", "Audit", "BlockingHTTP", "Journal", "EvidenceIO", "Manifest", "Settings"],
    "Receivers": ["CodedErrors", "Audit", "Incidents", "Ingest", "EvidenceIO", "Manifest", "Settings"],
    "Capture": [
      "CodedErrors", "Audit", "Incidents", "Ingest", "Journal", "Manifest", "Receivers", "Sampling", "Settings",
    ],
    "Verify": ["Audit", "Keys", "EvidenceIO", "Manifest"],
    "Seal": [
      "CodedErrors", "Audit", "EvidenceIO", "Ingest", "Journal", "Keys", "Manifest", "OTLPWire", "Signing", "Verify",
    ],
    "Kit": ["Keys", "EvidenceIO", "Manifest", "Signing"],
    "Report": ["Audit", "Keys", "Manifest", "Verify"],
    "Replay": ["Audit", "BlockingHTTP", "EvidenceIO", "Manifest", "OTLPProto", "OTLPWire", "Verify"],
    "ObjectStore": ["CodedErrors", "EvidenceIO", "Manifest"],
    "StellaForensicsCLI": [
      "CodedErrors", "Audit", "Capture", "EvidenceIO", "Incidents", "Ingest", "Journal", "Keys", "Kit", "Manifest",
      "Receivers",
      "Sampling",
      "Settings",
      "OTLPProto",
      "OTLPWire", "Replay", "Report",
      "Seal",
      "Signing",
      "Verify",
    ],
  ]

  static let firstParty: Set<String> = Set(allowedFirstParty.keys).union(["CSodium", "CZstd", "CCrypto", "CCRC32C"])

  /// All the pure evidence model may import: the wire walk and the CRC32C computation. Not even
  /// Foundation, so no file, clock or process call can hide in it.
  static let pureModelImports: Set<String> = ["OTLPWire", "CCRC32C"]

  /// Modules that must work on an offline laptop: no networking stack at all.
  static let offline: Set<String> = [
    "CodedErrors", "Settings", "Manifest", "EvidenceIO", "Keys", "Signing", "Audit", "Ingest", "Journal", "Sampling",
    "Verify", "Seal",
    "Kit",
    "Report",
  ]

  /// Modules an auditor's verification runs on: no private key can be loaded or used there.
  static let publicKeysOnly: Set<String> = ["Keys", "Verify", "Report"]

  static func isNetworking(_ module: String) -> Bool {
    module.hasPrefix("NIO") || module.hasPrefix("GRPC") || module == "BlockingHTTP" || module == "Prometheus"
      || module == "CoreMetrics"
  }

  /// The module names `text` imports: the `import` lines of the file's header (comments, blank
  /// lines, `#if` lines and imports), so text that merely looks like an import further down, such
  /// as a script inside a string literal, does not count.
  static func imports(in text: String) -> [String] {
    var modules: [String] = []
    let accessOrAttribute: Set<String> = ["public", "internal", "package", "private", "fileprivate", "@testable"]
    let declarationKinds: Set<String> = ["struct", "class", "enum", "protocol", "func", "var", "let", "typealias"]
    var inBlockComment = false
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
      let line = rawLine.trimmingCharacters(in: .whitespaces)
      if inBlockComment {
        if line.contains("*/") { inBlockComment = false }
        continue
      }
      if line.isEmpty || line.hasPrefix("//") || line.hasPrefix("#") { continue }
      if line.hasPrefix("/*") {
        inBlockComment = !line.contains("*/")
        continue
      }
      var words = line.split(separator: " ").map(String.init)
      while let first = words.first, accessOrAttribute.contains(first) || first.hasPrefix("@") {
        words.removeFirst()
      }
      guard words.first == "import", words.count >= 2 else { break }
      var name = words[1]
      if declarationKinds.contains(name), words.count >= 3 { name = words[2] }
      modules.append(String(name.prefix { $0 != "." }))
    }
    return modules
  }

  /// Every rule `module`'s file `text` breaks, as sentences naming the file.
  static func violations(module: String, file: String, text: String) -> [String] {
    let imported = imports(in: text)
    var found: [String] = []
    if module == "OTLPWire", !imported.isEmpty {
      found.append("\(file): OTLPWire is pure and imports nothing, but imports \(imported.joined(separator: ", "))")
    }
    for name in imported where module == "Manifest" && !pureModelImports.contains(name) {
      found.append("\(file): Manifest is the pure evidence model and does no I/O, but imports \(name)")
    }
    for name in imported {
      if name == "StellaForensicsCLI" {
        found.append("\(file): nothing imports the CLI")
      }
      if publicKeysOnly.contains(module), name == "Signing" || name == "Seal" {
        found.append("\(file): \(module) holds public keys only, but imports \(name) (private keys)")
      }
      if module == "Receivers", name == "Journal" || name == "Sampling" {
        found.append("\(file): receivers hand requests to admission (Ingest) and never reach into \(name)")
      }
      if offline.contains(module), isNetworking(name) {
        found.append("\(file): \(module) works offline, but imports \(name)")
      }
      if firstParty.contains(name), name != module, !(allowedFirstParty[module]?.contains(name) ?? false) {
        found.append("\(file): \(module) may not import \(name) (docs/architecture.md)")
      }
    }
    return found
  }
}

@Suite struct DependencyRulesTests {
  /// `Sources/`, found from this file's path (Tests/ArchitectureTests/…).
  static let sourcesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Sources")

  static func moduleName(ofDirectory name: String) -> String {
    name == "stella-forensics" ? "StellaForensicsCLI" : name
  }

  @Test func everySourceFileKeepsTheDependencyRules() throws {
    let directories = try FileManager.default.contentsOfDirectory(atPath: Self.sourcesDirectory.path).sorted()
    var checkedFiles = 0
    var violations: [String] = []
    for directory in directories {
      let module = Self.moduleName(ofDirectory: directory)
      guard DependencyRules.allowedFirstParty[module] != nil else {
        // C shims hold no Swift; any other new folder must get its rules first.
        #expect(directory.hasPrefix("C"), "Sources/\(directory) has no dependency rules in DependencyRules")
        continue
      }
      let root = Self.sourcesDirectory.appendingPathComponent(directory)
      let enumerator = FileManager.default.enumerator(atPath: root.path)
      while let relative = enumerator?.nextObject() as? String {
        guard relative.hasSuffix(".swift") else { continue }
        let text = try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
        violations += DependencyRules.violations(module: module, file: "Sources/\(directory)/\(relative)", text: text)
        checkedFiles += 1
      }
    }
    #expect(checkedFiles > 100, "found only \(checkedFiles) Swift files under \(Self.sourcesDirectory.path)")
    #expect(violations.isEmpty, "\(violations.joined(separator: "\n"))")
  }

  @Test func aForbiddenImportIsReported() {
    let verifierSigning = """
      // A verifier file that loads a private key.
      import Foundation
      public import Keys
      @preconcurrency import Signing

      enum X {}
      """
    #expect(
      DependencyRules.violations(module: "Verify", file: "V.swift", text: verifierSigning) == [
        "V.swift: Verify holds public keys only, but imports Signing (private keys)",
        "V.swift: Verify may not import Signing (docs/architecture.md)",
      ])
    #expect(
      DependencyRules.violations(module: "EvidenceIO", file: "E.swift", text: "internal import NIOCore\n") == [
        "E.swift: EvidenceIO works offline, but imports NIOCore"
      ])
    #expect(
      DependencyRules.violations(module: "OTLPWire", file: "W.swift", text: "import Foundation\n") == [
        "W.swift: OTLPWire is pure and imports nothing, but imports Foundation"
      ])
    #expect(
      DependencyRules.violations(module: "Replay", file: "R.swift", text: "import struct StellaForensicsCLI.Thing\n")
        == [
          "R.swift: nothing imports the CLI",
          "R.swift: Replay may not import StellaForensicsCLI (docs/architecture.md)",
        ])
    #expect(
      DependencyRules.violations(module: "Receivers", file: "H.swift", text: "import Journal\n") == [
        "H.swift: receivers hand requests to admission (Ingest) and never reach into Journal",
        "H.swift: Receivers may not import Journal (docs/architecture.md)",
      ])
    #expect(
      DependencyRules.violations(module: "Capture", file: "C.swift", text: "import Capture\nimport Verify\n") == [
        "C.swift: Capture may not import Verify (docs/architecture.md)"
      ])
  }

  @Test func thePureEvidenceModelImportsNoIO() {
    #expect(
      DependencyRules.violations(module: "Manifest", file: "M.swift", text: "import Foundation\nimport EvidenceIO\n")
        == [
          "M.swift: Manifest is the pure evidence model and does no I/O, but imports Foundation",
          "M.swift: Manifest is the pure evidence model and does no I/O, but imports EvidenceIO",
          "M.swift: Manifest may not import EvidenceIO (docs/architecture.md)",
        ])
    #expect(DependencyRules.violations(module: "Manifest", file: "M.swift", text: "public import OTLPWire\n").isEmpty)
  }

  @Test func onlyTheFileHeaderIsReadForImports() {
    let text = """
      /* A block comment
         import Signing */
      #if canImport(Glibc)
        import Glibc
      #endif
      import Manifest

      let script = \"\"\"
      import Signing
      \"\"\"
      """
    #expect(DependencyRules.imports(in: text) == ["Glibc", "Manifest"])
  }
}
