/// Names that travel into manifests, headers, logs and command lines: tenants, node ids,
/// incident ids. One conservative alphabet (ASCII letters, digits and a few punctuation marks)
/// keeps them safe in every tool an auditor might use; none of them is ever a file path.
public enum NameRules {
  /// Why `name` is not 1...`maxBytes` bytes of letters, digits and `punctuation`, or `nil`.
  public static func problem(with name: String, maxBytes: Int, punctuation: String) -> String? {
    let bytes = Array(name.utf8)
    guard (1...maxBytes).contains(bytes.count) else { return "must be 1...\(maxBytes) bytes long" }
    let extra = Set(punctuation.utf8)
    let allowed = bytes.allSatisfy { byte in
      (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        || extra.contains(byte)
    }
    let listed = punctuation.map { String($0) }.joined(separator: " ")
    return allowed ? nil : "\"\(name)\" may hold only letters, digits and \(listed)"
  }
}

/// Tenant names: 1...255 UTF-8 bytes of letters, digits, `.`, `_`, `-`, `:` and `@`.
///
/// Tenants are never used in file paths (blob names are digests, journal directories are named by
/// a digest of the tenant), but a conservative alphabet keeps them safe everywhere else.
public enum TenantName {
  /// Why `name` is not a valid tenant, or `nil` when it is.
  public static func problem(with name: String) -> String? {
    NameRules.problem(with: name, maxBytes: 255, punctuation: "._-:@")
  }
}

/// Node ids name streams in manifests and segment headers: 1...255 bytes of letters, digits,
/// `.`, `_` and `-`.
public enum NodeID {
  /// Why `name` cannot be a node id, or `nil` if it can.
  public static func problem(with name: String) -> String? {
    NameRules.problem(with: name, maxBytes: 255, punctuation: "._-")
  }
}
