public import CodedErrors
import EvidenceIO
import Foundation
import Manifest
import Settings
import Yams

#if canImport(Glibc)
  import Glibc
#endif

/// What a principal of the admin API may do. Each role includes the rights of the one before.
public enum AdminRole: String, Sendable, Equatable, CaseIterable, Comparable {
  /// Status, incident list and get.
  case viewer
  /// A viewer who may also start and stop incidents and seal open segments.
  case responder
  /// Everything, including what later steps add (configuration reload...).
  case admin

  /// Whether the role carries `right`.
  public func allows(_ right: AdminRight) -> Bool { self >= right.minimumRole }

  public static func < (lhs: AdminRole, rhs: AdminRole) -> Bool {
    allCases.firstIndex(of: lhs) ?? 0 < allCases.firstIndex(of: rhs) ?? 0
  }
}

/// A right an admin route requires.
public enum AdminRight: String, Sendable, Equatable {
  /// Reading: `/status`, `GET /incidents`, `GET /incidents/ID`.
  case view
  /// Incident start and stop, `POST /seal`.
  case respond
  /// Everything else a later step adds (reload...).
  case administer

  /// The least role that carries this right.
  public var minimumRole: AdminRole {
    switch self {
    case .view: .viewer
    case .respond: .responder
    case .administer: .admin
    }
  }
}

/// Who called the admin API, as authenticated: the name is what custody records.
public struct AdminPrincipal: Sendable, Equatable {
  /// The token's name in the tokens file (`alice`, `local-operator`).
  public var name: String
  public var role: AdminRole

  public init(name: String, role: AdminRole) {
    self.name = name
    self.role = role
  }
}

/// Why a tokens file cannot be used, naming the file and, where it applies, the entry.
public typealias AdminTokensError = FileError<AdminTokensErrorCode>

/// The codes of ``AdminTokensError``: what kind of failure it is.
public enum AdminTokensErrorCode: Sendable, Hashable {
  /// Not valid YAML, or an entry that breaks a rule (bad name, role or digest; duplicates).
  case invalid
  /// The file is readable or writable by others, or owned by another user.
  case insecure
  /// The file could not be read or written.
  case io
}

/// The admin API's tokens: name, role and the SHA-256 of each token (the token itself is never
/// stored on the server side).
///
/// ```yaml
/// tokens:
///   - name: alice          # the principal recorded in custody
///     role: responder      # viewer | responder | admin
///     sha256: 9f86d0…      # lowercase hex SHA-256 of the token's bytes
/// ```
public struct AdminTokens: Sendable {
  /// One named token.
  public struct Entry: Sendable, Equatable {
    public var principal: AdminPrincipal
    /// The 32-byte SHA-256 of the token.
    public var digest: [UInt8]

    public init(name: String, role: AdminRole, digest: [UInt8]) {
      self.principal = AdminPrincipal(name: name, role: role)
      self.digest = digest
    }
  }

  /// Where the tokens came from (for logs and errors).
  public let path: String
  public let entries: [Entry]

  /// The name of the token generated for the local operator when no tokens file is given.
  public static let localOperatorName = "local-operator"
  /// The generated tokens file inside the data directory.
  public static let generatedTokensFile = "admin-tokens.yaml"
  /// The generated token itself, for the CLI on the same host (`incident --data DIR`).
  public static let generatedTokenFile = "admin-token"

  public init(path: String, entries: [Entry]) {
    self.path = path
    self.entries = entries
  }

  /// Token names are principals in custody records: 1...64 bytes of letters, digits, `.`, `_`,
  /// `-`, `@` and `:`.
  public static func nameProblem(_ name: String) -> String? {
    NameRules.problem(with: name, maxBytes: 64, punctuation: "._-@:")
  }

  /// The principal whose token is `token`, or `nil`. Every entry's digest is compared in
  /// constant time and none is skipped, so timing reveals neither which entry matched nor how
  /// many bytes of a guess were right.
  public func authenticate(token: [UInt8]) -> AdminPrincipal? {
    let digest = SHA256Digest.of(token)
    var found: AdminPrincipal?
    for entry in entries where Self.constantTimeEqual(entry.digest, digest) && found == nil {
      found = entry.principal
    }
    return found
  }

  static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
  }

  // MARK: - Reading

  /// Reads a tokens file, refusing it unless it is a regular file (not a symlink) of mode 0600
  /// owned by the user running capture: anyone else who can read it learns the principals, and
  /// anyone who can write it can make themselves an admin.
  public static func load(path: String) throws(AdminTokensError) -> AdminTokens {
    let text = try readPrivateFile(path)
    return try parse(yaml: text, path: path)
  }

  /// Parses the YAML form (no file checks; ``load(path:)`` does those).
  public static func parse(yaml text: String, path: String) throws(AdminTokensError) -> AdminTokens {
    let yaml = ConfigurationYAML<AdminTokensError>(path: path) { key, problem in
      AdminTokensError(.invalid, path: path, tokensFileProblem(key, problem))
    }
    guard let node = try yaml.document(text), node.mapping != nil else {
      throw AdminTokensError(.invalid, path: path, "must be a mapping with a tokens: list")
    }
    var list: [Node]?
    for (key, value) in try yaml.mapping(node, "") {
      guard key == "tokens" else {
        throw AdminTokensError(.invalid, path: path, "unknown key \(key) (only tokens:)")
      }
      list = try yaml.sequence(value, "tokens")
    }
    guard let list, !list.isEmpty else {
      throw AdminTokensError(.invalid, path: path, "tokens: at least one token is needed")
    }
    var entries: [Entry] = []
    for (index, item) in list.enumerated() {
      let at = "tokens[\(index)]"
      var name: String?
      var role: AdminRole?
      var digest: [UInt8]?
      for (key, value) in try yaml.mapping(item, at) {
        let text = try yaml.string(value, "\(at).\(key)")
        switch key {
        case "name":
          if let problem = nameProblem(text) { throw AdminTokensError(.invalid, path: path, "\(at).name: \(problem)") }
          name = text
        case "role":
          guard let parsed = AdminRole(rawValue: text) else {
            throw AdminTokensError(.invalid, path: path, "\(at).role must be viewer, responder or admin, not \(text)")
          }
          role = parsed
        case "sha256":
          guard Hex.isHex64(text), let bytes = Hex.decode(text) else {
            throw AdminTokensError(
              .invalid, path: path, "\(at).sha256 must be 64 lowercase hex digits (the SHA-256 of the token)")
          }
          digest = bytes
        default:
          throw yaml.unknown("\(at).\(key)")
        }
      }
      guard let name, let role, let digest else {
        throw AdminTokensError(.invalid, path: path, "\(at) needs name, role and sha256")
      }
      if entries.contains(where: { $0.principal.name == name }) {
        throw AdminTokensError(.invalid, path: path, "\(at): name \(name) appears twice")
      }
      // Two names for one token would make custody ambiguous.
      if entries.contains(where: { $0.digest == digest }) {
        throw AdminTokensError(.invalid, path: path, "\(at): the token of \(name) is also another entry's")
      }
      entries.append(Entry(name: name, role: role, digest: digest))
    }
    return AdminTokens(path: path, entries: entries)
  }

  /// The tokens file's wording of a problem the shared reader found at `key` (`""` for the
  /// document, `tokens`, `tokens[2]`, `tokens[2].role`).
  private static func tokensFileProblem(_ key: String, _ problem: YAMLProblem) -> String {
    switch problem {
    case .invalidYAML(let description): return "not valid YAML: \(description)"
    case .notMapping: return key.isEmpty ? "must be a mapping with a tokens: list" : "\(key) must be a mapping"
    case .notList: return "\(key) must be a list"
    case .notScalar, .notDuration, .notSize: return "\(key) must be a scalar"
    case .nonStringKey:
      return key.isEmpty ? "unknown key ? (only tokens:)" : "\(key): unknown key ? (name, role, sha256)"
    case .unknownKey:
      // Only an entry's keys reach here: `tokens[2].colour`.
      let parts = key.split(separator: ".", maxSplits: 1)
      return "\(parts.first ?? ""): unknown key \(parts.last ?? "?") (name, role, sha256)"
    }
  }

  /// The file's text, if it is a regular file (not a symlink) of mode 0600 owned by this user.
  static func readPrivateFile(_ path: String) throws(AdminTokensError) -> String {
    let bytes: [UInt8]
    do {
      bytes = try EvidenceFiles.readPrivateFile(path, maxBytes: 1 << 20)
    } catch {
      throw AdminTokensError(error.kind == .insecure ? .insecure : .io, path: path, error.message)
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
      throw AdminTokensError(.invalid, path: path, "is not UTF-8")
    }
    return text
  }

  // MARK: - The local operator's token

  /// The tokens of the data directory: `DATA/admin-tokens.yaml` as generated at the first start
  /// without `--admin-tokens`, made now if it does not exist yet, with a fresh `admin` token
  /// for the local operator whose plain text goes to `DATA/admin-token` (both 0600) for the CLI
  /// on this host. Call it while holding the data directory's lock (after the journal opened).
  public static func loadOrCreateLocal(dataDirectory: String) throws(AdminTokensError) -> AdminTokens {
    let tokensPath = dataDirectory + "/" + generatedTokensFile
    if FileManager.default.fileExists(atPath: tokensPath) { return try load(path: tokensPath) }
    // 32 bytes from the system's CSPRNG (getrandom on Linux), hex: 256 bits, no shell quoting.
    var generator = SystemRandomNumberGenerator()
    let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let token = Hex.encode(secret)
    let digest = SHA256Digest.hex(of: Array(token.utf8))
    let yaml = """
      # Generated by `stella-forensics capture` at its first start without --admin-tokens.
      # The token itself is in admin-token next to this file (0600); the CLI on this host reads it
      # (incident ... --data DIR). Replace this file with --admin-tokens FILE to name your principals.
      tokens:
        - name: \(localOperatorName)
          role: admin
          sha256: \(digest)

      """
    // The token first: a crash between the two leaves no tokens file, so the next start makes
    // both again instead of trusting a digest whose token is lost.
    try writePrivateFile(dataDirectory + "/" + generatedTokenFile, contents: Array((token + "\n").utf8))
    try writePrivateFile(tokensPath, contents: Array(yaml.utf8))
    return try parse(yaml: yaml, path: tokensPath)
  }

  /// Writes `contents` to `path` as a 0600 file, atomically and durably (see
  /// `EvidenceFiles.writeAtomically`).
  static func writePrivateFile(_ path: String, contents: [UInt8]) throws(AdminTokensError) {
    do {
      try EvidenceFiles.writeAtomically(contents, to: path, mode: 0o600)
    } catch {
      throw AdminTokensError(.io, path: path, error.message)
    }
  }
}
