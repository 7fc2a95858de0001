import Foundation
public import Manifest
public import Signing

/// Why a kit could not be built. The message names the file or key involved.
public struct KitBuildError: Error, Sendable, CustomStringConvertible {
  public var message: String
  /// The output already exists and replacing it was not asked for.
  public var outputExists: Bool

  public init(_ message: String, outputExists: Bool = false) {
    self.message = message
    self.outputExists = outputExists
  }

  public var description: String { message }
}

/// What an offline kit carries, taken from a source tree (a checkout of this repository) and the
/// binary: everything an air-gapped site installs, in one place so the README's kit layout and
/// the builder cannot drift apart.
public enum KitContents {
  /// The binary's member name.
  public static let binaryPath = "bin/stella-forensics"
  /// Directories of the source tree taken whole (every regular file, recursively, except names
  /// starting with a dot): capture configurations, deployment files (Collector configs, alert
  /// rules and their tests, dashboard, service unit) and documentation (runbooks, the bundle
  /// format specification, the man page).
  public static let directories = ["config", "deploy", "docs"]
  /// Single files of the source tree's top level.
  public static let topLevelFiles = ["README.md"]
  /// Files a kit must hold; building fails naming the first one missing, so a kit never ships
  /// without what the site needs to install and operate it.
  public static let requiredFiles = [
    "README.md",
    "config/capture.example.yaml", "config/hooks.example.yaml", "config/redaction.example.yaml",
    "config/sampling.example.yaml",
    "deploy/otelcol/airgap.yaml", "deploy/otelcol/default.yaml", "deploy/otelcol/filelog.yaml",
    "deploy/otelcol/forensic.yaml",
    "deploy/systemd/stella-capture.service",
    "docs/auditor-checklist.md", "docs/bundle-format.md", "docs/control-objectives.md", "docs/kit.md",
    "docs/operator-runbook.md", "docs/soc-handover.md", "docs/soc-runbook.md",
  ]
}

/// Builds an offline kit: collects ``KitContents``, writes `kit.json` and its DSSE envelope
/// (payload type ``DSSE/kitPayloadType``) signed by every given key, and the archive with the
/// bundle's tar rules. The same inputs give the same bytes: files are sorted by path, headers
/// carry no time, owner or mode from the machine, and Ed25519 signatures are deterministic.
public struct KitBuilder: Sendable {
  /// The source tree the files come from.
  public var sourceDirectory: String
  /// The binary put at ``KitContents/binaryPath``.
  public var binaryPath: String
  /// Recorded in `kit.json` as the building tool (`stella-forensics 0.1.0`).
  public var tool: String

  public init(sourceDirectory: String, binaryPath: String, tool: String) {
    self.sourceDirectory = sourceDirectory
    self.binaryPath = binaryPath
    self.tool = tool
  }

  /// The path of the running executable (`/proc/self/exe`), the default binary of a kit.
  public static func runningExecutable() -> String? {
    let resolved = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    return resolved ?? CommandLine.arguments.first
  }

  /// Every file of the kit with where its bytes are, sorted by member name.
  public func collect() throws(KitBuildError) -> [(path: String, source: String)] {
    var files: [(path: String, source: String)] = [(KitContents.binaryPath, binaryPath)]
    try Self.requireRegularFile(binaryPath, what: "the binary")
    for name in KitContents.topLevelFiles {
      let source = sourceDirectory + "/" + name
      if FileManager.default.fileExists(atPath: source) {
        try Self.requireRegularFile(source, what: name)
        files.append((name, source))
      }
    }
    for directory in KitContents.directories {
      try collect(directory: directory, into: &files)
    }
    files.sort { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    let paths = Set(files.map(\.path))
    for required in KitContents.requiredFiles where !paths.contains(required) {
      throw KitBuildError(
        "\(sourceDirectory)/\(required) is missing: a kit must carry it (is --source a checkout of stella-forensics?)")
    }
    return files
  }

  /// Collects, hashes, signs and writes the kit to `outputPath`.
  /// - Parameter replacing: replace an existing output (atomically); otherwise refuse it.
  /// - Returns: the manifest that was signed.
  @discardableResult
  public func build(signingKeys: [Ed25519PrivateKey], outputPath: String, replacing: Bool) throws(KitBuildError)
    -> KitManifest
  {
    guard !signingKeys.isEmpty else { throw KitBuildError("no signing key given") }
    let files = try collect()
    var entries: [KitManifest.File] = []
    for file in files {
      let digest: String
      let size: Int
      do {
        let source = try FileByteSource(path: file.source)
        size = source.count
        digest = try SHA256Digest.hex(of: source, offset: 0, count: size)
      } catch {
        throw KitBuildError("cannot read \(file.source): \(error.message)")
      }
      entries.append(KitManifest.File(path: file.path, sha256: digest, size: UInt64(size)))
    }
    let manifest: KitManifest
    let manifestBytes: [UInt8]
    do {
      manifest = try KitManifest(files: entries, tool: tool)
      manifestBytes = try manifest.canonicalJSON()
    } catch {
      throw KitBuildError(error.message)
    }
    var envelope = DSSEEnvelope(payload: manifestBytes, payloadType: DSSE.kitPayloadType, signatures: [])
    for key in signingKeys { envelope.sign(with: key) }
    var members: [(name: String, data: MemberData)] = [
      (KitManifest.manifestName, .bytes(manifestBytes)), (KitManifest.envelopeName, .bytes(envelope.canonicalJSON())),
    ]
    for (file, entry) in zip(files, entries) {
      members.append((file.path, .fileRange(path: file.source, offset: 0, count: Int(entry.size))))
    }
    do {
      try BundleArchiveWriter.write(members: members, to: outputPath, replacing: replacing)
    } catch {
      throw KitBuildError(error.description, outputExists: error.outputExists)
    }
    return manifest
  }

  private func collect(directory: String, into files: inout [(path: String, source: String)]) throws(KitBuildError) {
    let root = sourceDirectory + "/" + directory
    // A directory absent from the tree contributes nothing; the required files decide whether
    // the tree is complete.
    guard FileManager.default.fileExists(atPath: root) else { return }
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: root)
    } catch {
      throw KitBuildError("cannot list \(root): \(error.localizedDescription)")
    }
    for name in names.sorted() where !name.hasPrefix(".") {
      let relative = directory + "/" + name
      let source = sourceDirectory + "/" + relative
      var info = stat()
      guard lstat(source, &info) == 0 else {
        throw KitBuildError("cannot stat \(source): \(String(cString: strerror(errno)))")
      }
      switch info.st_mode & S_IFMT {
      case S_IFDIR:
        try collect(directory: relative, into: &files)
      case S_IFREG:
        guard BundleTar.isSafeMemberName(relative), relative.utf8.count <= 100 else {
          throw KitBuildError(
            "\(source): the kit's member names allow only [A-Za-z0-9._-] components and 100 bytes; rename the file")
        }
        files.append((relative, source))
      default:
        // A symlink could pull any file of the building machine into a signed kit.
        throw KitBuildError("\(source) is not a regular file or directory (symlinks are not followed)")
      }
    }
  }

  private static func requireRegularFile(_ path: String, what: String) throws(KitBuildError) {
    var info = stat()
    guard stat(path, &info) == 0 else {
      throw KitBuildError("\(what) \(path): \(String(cString: strerror(errno)))")
    }
    guard info.st_mode & S_IFMT == S_IFREG else { throw KitBuildError("\(what) \(path) is not a regular file") }
  }
}
