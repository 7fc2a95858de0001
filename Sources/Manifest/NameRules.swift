/// Names that travel into manifests, headers, logs and command lines: tenants, node ids,
/// incident ids. One conservative alphabet (ASCII letters, digits and a few punctuation marks)
/// keeps them safe in every tool an auditor might use; none of them is ever a file path. Bundle
/// member paths follow the same alphabet, joined by slashes.
public enum NameRules {
  /// Whether `name` obeys the bundle member-name rule of BUNDLE-FORMAT.md §2.1: `[A-Za-z0-9._-]`
  /// components joined by single slashes, none of them `.` or `..`.
  public static func isSafeMemberPath(_ name: String) -> Bool {
    let components = name.split(separator: "/", omittingEmptySubsequences: false)
    return !name.isEmpty
      && components.allSatisfy { component in
        !component.isEmpty && component != "." && component != ".."
          && component.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
              || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
          }
      }
  }

  /// Why `name` is not 1...`maxBytes` bytes of letters, digits and `punctuation`, or `nil`.
  ///
  /// Every admitted request checks its tenant here, so a valid name costs one pass over its
  /// bytes and allocates nothing; the message is only built for a name that fails.
  public static func problem(with name: String, maxBytes: Int, punctuation: StaticString) -> String? {
    var count = 0
    var allowed = true
    for byte in name.utf8 {
      count += 1
      if allowed && !isAllowed(byte, punctuation: punctuation) { allowed = false }
    }
    guard (1...maxBytes).contains(count) else { return "must be 1...\(maxBytes) bytes long" }
    guard allowed else {
      let listed = punctuation.description.map { String($0) }.joined(separator: " ")
      return "\"\(name)\" may hold only letters, digits and \(listed)"
    }
    return nil
  }

  private static func isAllowed(_ byte: UInt8, punctuation: StaticString) -> Bool {
    switch byte {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    default:
      return punctuation.withUTF8Buffer { $0.contains(byte) }
    }
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
