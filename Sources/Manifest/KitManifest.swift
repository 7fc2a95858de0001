/// The signed content list of an offline kit (README, "The offline kit"): `kit.json`, the
/// canonical JSON (RFC 8785) object
/// `{"files":[{"path":…,"sha256":…,"size":…},…],"kitVersion":1,"tool":…}`.
///
/// The kit is a ustar archive with the bundle's header rules (BUNDLE-FORMAT.md §2.1): `kit.json`,
/// then `kit.dsse.json` (its DSSE envelope, payload type `DSSE.kitPayloadType`), then every listed
/// file in the order of `files`, which is sorted by path (byte order) with each path once.
public struct KitManifest: Sendable, Equatable {
  /// The member name of the manifest.
  public static let manifestName = "kit.json"
  /// The member name of the manifest's DSSE envelope.
  public static let envelopeName = "kit.dsse.json"
  /// The only version this tool writes and reads.
  public static let version = 1

  /// One file of the kit.
  public struct File: Sendable, Equatable {
    /// The member name: `[A-Za-z0-9._-]` components joined by `/` (§2.1's rule).
    public var path: String
    /// Lowercase hex SHA-256 of the file's bytes.
    public var sha256: String
    public var size: UInt64

    public init(path: String, sha256: String, size: UInt64) {
      self.path = path
      self.sha256 = sha256
      self.size = size
    }
  }

  /// The files, sorted by path.
  public private(set) var files: [File]
  /// The tool and version that built the kit (`stella-forensics 0.1.0`); informative only.
  public var tool: String

  /// A manifest of `files` (sorted here by path).
  /// - Throws: a message when a path breaks the member-name rule, is reserved, or repeats.
  public init(files: [File], tool: String) throws(KitManifestError) {
    let sorted = files.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    try Self.checkPaths(sorted.map(\.path))
    self.files = sorted
    self.tool = tool
  }

  /// The canonical bytes of `kit.json`.
  public func canonicalJSON() throws(KitManifestError) -> [UInt8] {
    let entries: [JSONValue] = files.map { file in
      .object([
        ("path", .string(file.path)), ("sha256", .string(file.sha256)), ("size", .number(String(file.size))),
      ])
    }
    do {
      return try CanonicalJSON.serialize(
        .object([("files", .array(entries)), ("kitVersion", .integer(Self.version)), ("tool", .string(tool))]))
    } catch {
      throw KitManifestError("kit.json cannot be serialized: \(error)")
    }
  }

  /// Reads `kit.json` strictly: canonical bytes, exactly the known keys, types and ranges, safe
  /// sorted unique paths.
  public static func parse(_ bytes: [UInt8]) throws(KitManifestError) -> KitManifest {
    let root: JSONValue
    do {
      root = try CanonicalJSON.parse(bytes)
    } catch {
      throw KitManifestError("kit.json: \(error)")
    }
    guard case .object(let members) = root, Set(members.map(\.key)) == ["files", "kitVersion", "tool"] else {
      throw KitManifestError("kit.json: expected an object with exactly files, kitVersion, tool")
    }
    guard root["kitVersion"] == .integer(version) else {
      throw KitManifestError("kit.json: kitVersion is not \(version)")
    }
    guard case .string(let tool) = root["tool"] else { throw KitManifestError("kit.json: tool is not a string") }
    guard case .array(let entries) = root["files"] else { throw KitManifestError("kit.json: files is not an array") }
    var files: [File] = []
    files.reserveCapacity(entries.count)
    for (index, entry) in entries.enumerated() {
      guard case .object(let fields) = entry, Set(fields.map(\.key)) == ["path", "sha256", "size"],
        case .string(let path) = entry["path"], case .string(let sha256) = entry["sha256"], Hex.isHex64(sha256),
        case .number(let sizeText) = entry["size"], let size = UInt64(sizeText),
        size <= CanonicalJSON.maxSafeInteger
      else {
        throw KitManifestError(
          "kit.json: files[\(index)] must be {path: string, sha256: 64 lowercase hex digits, size: integer >= 0}")
      }
      files.append(File(path: path, sha256: sha256, size: size))
    }
    let paths = files.map(\.path)
    try checkPaths(paths)
    for index in paths.indices.dropFirst()
    where !Array(paths[index - 1].utf8).lexicographicallyPrecedes(Array(paths[index].utf8)) {
      throw KitManifestError("kit.json: files are not sorted by path at files[\(index)] (\(paths[index]))")
    }
    let manifest = KitManifest(checkedFiles: files, tool: tool)
    guard (try? manifest.canonicalJSON()) == bytes else {
      throw KitManifestError("kit.json: bytes are not RFC 8785 canonical JSON")
    }
    return manifest
  }

  private init(checkedFiles: [File], tool: String) {
    self.files = checkedFiles
    self.tool = tool
  }

  private static func checkPaths(_ paths: [String]) throws(KitManifestError) {
    var seen: Set<String> = []
    for path in paths {
      guard NameRules.isSafeMemberPath(path), Array(path.utf8).count <= 100 else {
        throw KitManifestError(
          "kit path \"\(path)\" is not a member name of at most 100 bytes of [A-Za-z0-9._-] components")
      }
      guard path != manifestName, path != envelopeName else {
        throw KitManifestError("kit path \"\(path)\" is reserved for the kit's manifest")
      }
      guard seen.insert(path).inserted else { throw KitManifestError("kit path \"\(path)\" appears twice") }
    }
  }
}

/// Why a kit manifest could not be made or read.
public struct KitManifestError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String

  public init(_ message: String) { self.message = message }

  public var description: String { message }
}
