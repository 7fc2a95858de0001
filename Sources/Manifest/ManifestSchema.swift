/// A manifest that breaks a type, range, enum, key-set or cross-field rule of BUNDLE-FORMAT.md §4.
public struct ManifestSchemaError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The JSON path of the offending field, for example `blobs[2].firstSeq`.
  public var field: String
  /// What was wrong with it.
  public var message: String

  public var description: String { "\(field): \(message)" }
}

extension BundleManifest {
  /// Reads a parsed manifest, enforcing every §4 schema rule.
  ///
  /// Ordering and uniqueness of `capture.nodes` and `blobs` are *not* checked here: they have
  /// their own reason codes (§9 step 5.4), as do path and sequence checks (5.5, 5.6).
  public init(validating value: JSONValue) throws(ManifestSchemaError) {
    let root = try SchemaObject(value, at: "manifest")
    try root.expectKeys(["formatVersion", "incident", "capture", "redactionPolicy", "tool", "blobs"])
    guard try root.integer("formatVersion", range: 1...1) == 1 else {
      throw ManifestSchemaError(field: "formatVersion", message: "must be 1")
    }

    let incident = try root.object("incident")
    try incident.expectKeys(["id", "reason", "declaredBy", "declaredAtUnixNano"])
    self.incident = IncidentFacts(
      id: try incident.string("id", maxBytes: 256),
      reason: try incident.string("reason", maxBytes: 4096),
      declaredBy: try incident.string("declaredBy", maxBytes: 256),
      declaredAtUnixNano: try incident.u64String("declaredAtUnixNano"))

    let capture = try root.object("capture")
    try capture.expectKeys(["startUnixNano", "endUnixNano", "nodes"])
    let start = try capture.u64String("startUnixNano")
    let end = try capture.u64String("endUnixNano")
    guard start <= end else {
      throw ManifestSchemaError(field: "capture", message: "startUnixNano \(start) is after endUnixNano \(end)")
    }
    let nodeValues = try capture.array("nodes")
    guard !nodeValues.isEmpty else {
      throw ManifestSchemaError(field: "capture.nodes", message: "must list at least one node")
    }
    var nodes: [String] = []
    for (index, node) in nodeValues.enumerated() {
      nodes.append(try SchemaObject.checkedString(node, at: "capture.nodes[\(index)]", maxBytes: 255))
    }
    self.capture = CaptureWindow(startUnixNano: start, endUnixNano: end, nodes: nodes)

    let policy = try root.object("redactionPolicy")
    try policy.expectKeys(["id", "sha256"])
    self.redactionPolicy = RedactionPolicyReference(
      id: try policy.string("id", maxBytes: 256), sha256: try policy.hex64("sha256"))

    let tool = try root.object("tool")
    try tool.expectKeys(["name", "version"])
    self.tool = ToolInfo(
      name: try tool.string("name", maxBytes: 256), version: try tool.string("version", maxBytes: 64))

    let blobValues = try root.array("blobs")
    guard !blobValues.isEmpty else {
      throw ManifestSchemaError(field: "blobs", message: "must list at least one blob")
    }
    var blobs: [BlobEntry] = []
    blobs.reserveCapacity(blobValues.count)
    for (index, blobValue) in blobValues.enumerated() {
      blobs.append(try BlobEntry(validating: blobValue, at: "blobs[\(index)]"))
    }
    self.blobs = blobs

    let blobNodes = Set(blobs.map(\.node))
    guard blobNodes == Set(nodes) else {
      throw ManifestSchemaError(
        field: "capture.nodes",
        message: "node set \(Set(nodes).sorted()) differs from the blobs' nodes \(blobNodes.sorted())")
    }
  }
}

extension BlobEntry {
  /// Reads one blob entry with the manifest's schema rules; `path` names it in errors.
  public init(validating value: JSONValue, at path: String) throws(ManifestSchemaError) {
    let entry = try SchemaObject(value, at: path)
    try entry.expectKeys([
      "path", "sha256", "size", "uncompressedSize", "signal", "tenant", "node", "recordCount",
      "firstSeq", "lastSeq", "firstTimeUnixNano", "lastTimeUnixNano", "encoding",
    ])
    let maxInteger = Int(CanonicalJSON.maxSafeInteger)
    self.path = try entry.string("path", maxBytes: 4096)
    self.sha256 = try entry.hex64("sha256")
    self.size = UInt64(try entry.integer("size", range: 1...maxInteger))
    self.uncompressedSize = UInt64(try entry.integer("uncompressedSize", range: 0...maxInteger))
    let signalName = try entry.string("signal", maxBytes: 16)
    guard let signal = Signal(rawValue: signalName) else {
      throw ManifestSchemaError(field: "\(path).signal", message: "unknown signal \"\(signalName)\"")
    }
    self.signal = signal
    self.tenant = try entry.string("tenant", maxBytes: 255)
    self.node = try entry.string("node", maxBytes: 255)
    self.recordCount = UInt64(try entry.integer("recordCount", range: 1...maxInteger))
    self.firstSeq = try entry.u64String("firstSeq")
    self.lastSeq = try entry.u64String("lastSeq")
    guard firstSeq <= lastSeq else {
      throw ManifestSchemaError(field: path, message: "firstSeq \(firstSeq) is after lastSeq \(lastSeq)")
    }
    self.firstTimeUnixNano = try entry.u64String("firstTimeUnixNano")
    self.lastTimeUnixNano = try entry.u64String("lastTimeUnixNano")
    guard firstTimeUnixNano <= lastTimeUnixNano else {
      throw ManifestSchemaError(
        field: path,
        message: "firstTimeUnixNano \(firstTimeUnixNano) is after lastTimeUnixNano \(lastTimeUnixNano)")
    }
    self.encoding = try entry.string("encoding", maxBytes: 64)
    guard encoding == BlobEntry.segmentEncoding else {
      throw ManifestSchemaError(field: "\(path).encoding", message: "unknown encoding \"\(encoding)\"")
    }
  }
}

/// Typed access to one JSON object of the manifest, naming the field path in every error.
private struct SchemaObject {
  let members: [(key: String, value: JSONValue)]
  let path: String

  init(_ value: JSONValue, at path: String) throws(ManifestSchemaError) {
    guard case .object(let members) = value else {
      throw ManifestSchemaError(field: path, message: "must be an object")
    }
    self.members = members
    self.path = path
  }

  func expectKeys(_ keys: Set<String>) throws(ManifestSchemaError) {
    let present = Set(members.map(\.key))
    if let unknown = present.subtracting(keys).sorted().first {
      throw ManifestSchemaError(field: "\(path).\(unknown)", message: "unknown key")
    }
    if let missing = keys.subtracting(present).sorted().first {
      throw ManifestSchemaError(field: "\(path).\(missing)", message: "missing")
    }
  }

  func value(_ key: String) throws(ManifestSchemaError) -> JSONValue {
    guard let value = members.first(where: { $0.key == key })?.value else {
      throw ManifestSchemaError(field: "\(path).\(key)", message: "missing")
    }
    return value
  }

  func object(_ key: String) throws(ManifestSchemaError) -> SchemaObject {
    try SchemaObject(try value(key), at: "\(path == "manifest" ? "" : path + ".")\(key)")
  }

  func array(_ key: String) throws(ManifestSchemaError) -> [JSONValue] {
    guard case .array(let items) = try value(key) else {
      throw ManifestSchemaError(field: "\(path).\(key)", message: "must be an array")
    }
    return items
  }

  func string(_ key: String, maxBytes: Int) throws(ManifestSchemaError) -> String {
    try SchemaObject.checkedString(try value(key), at: "\(path).\(key)", maxBytes: maxBytes)
  }

  static func checkedString(_ value: JSONValue, at field: String, maxBytes: Int) throws(ManifestSchemaError)
    -> String
  {
    guard case .string(let text) = value else {
      throw ManifestSchemaError(field: field, message: "must be a string")
    }
    let length = text.utf8.count
    guard (1...maxBytes).contains(length) else {
      throw ManifestSchemaError(field: field, message: "length \(length) bytes is outside 1...\(maxBytes)")
    }
    if let control = text.unicodeScalars.first(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
      throw ManifestSchemaError(
        field: field, message: "contains control character U+\(String(control.value, radix: 16, uppercase: true))")
    }
    return text
  }

  func integer(_ key: String, range: ClosedRange<Int>) throws(ManifestSchemaError) -> Int {
    guard case .number(let token) = try value(key), let number = Int(token), range.contains(number) else {
      throw ManifestSchemaError(
        field: "\(path).\(key)", message: "must be an integer in \(range.lowerBound)...\(range.upperBound)")
    }
    return number
  }

  func u64String(_ key: String) throws(ManifestSchemaError) -> UInt64 {
    guard case .string(let text) = try value(key), let number = BundleManifest.parseU64String(text) else {
      throw ManifestSchemaError(
        field: "\(path).\(key)", message: "must be a decimal string of an unsigned 64-bit integer")
    }
    return number
  }

  func hex64(_ key: String) throws(ManifestSchemaError) -> String {
    guard case .string(let text) = try value(key), Hex.isHex64(text) else {
      throw ManifestSchemaError(field: "\(path).\(key)", message: "must be 64 lowercase hex digits")
    }
    return text
  }
}

extension BundleManifest {
  /// Parses a u64-string: `^(0|[1-9][0-9]{0,19})$` with value at most 2^64 - 1.
  public static func parseU64String(_ text: String) -> UInt64? {
    let utf8 = Array(text.utf8)
    guard (1...20).contains(utf8.count), utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    if utf8.count > 1, utf8[0] == 0x30 { return nil }
    return UInt64(text)
  }
}
