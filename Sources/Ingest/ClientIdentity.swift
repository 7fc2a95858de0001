/// Who a verified client certificate names: its subject common names and its subject alternative
/// names, as tenancy's identity mapping (`tenancy.identities`) compares them.
///
/// Only the TLS layer makes these, from a certificate the handshake verified against the client
/// CA, so a value here is authenticated; a request header never is.
public struct ClientIdentity: Sendable, Equatable, CustomStringConvertible {
  /// The subject's common names (`CN`), usually one.
  public var commonNames: [String]
  /// Subject alternative names in `TYPE:value` form: `DNS:collector-a.example`, `IP:10.0.0.5`,
  /// `IP:2001:db8::1`, `URI:spiffe://example/collector`, `email:ops@example.org`.
  public var alternativeNames: [String]

  public init(commonNames: [String], alternativeNames: [String] = []) {
    self.commonNames = commonNames
    self.alternativeNames = alternativeNames
  }

  /// `CN=collector-a, SAN=DNS:collector-a.example,IP:10.0.0.5`; empty when the certificate names
  /// nobody.
  public var description: String {
    var parts = commonNames.map { "CN=\($0)" }
    if !alternativeNames.isEmpty { parts.append("SAN=" + alternativeNames.joined(separator: ",")) }
    return parts.joined(separator: ", ")
  }

  /// Whether the certificate names nobody (no common name, no alternative name).
  public var isEmpty: Bool { commonNames.isEmpty && alternativeNames.isEmpty }
}

/// One `tenancy.identities` entry: the tenants a client certificate may write under.
///
/// `certificate` selects certificates by one name, compared whole (no wildcards, no prefixes):
/// - `DNS:NAME` matches a DNS subject alternative name, ignoring ASCII case (DNS names are
///   case-insensitive);
/// - `IP:ADDRESS`, `URI:VALUE`, `email:VALUE` match that subject alternative name exactly (IP
///   addresses as capture prints them: dotted IPv4, RFC 5952 IPv6);
/// - `CN=NAME`, or a bare `NAME` without one of the prefixes above, matches a subject common name
///   exactly.
public struct IdentityTenants: Sendable, Equatable {
  /// The selector, as written in the configuration.
  public var certificate: String
  /// The tenants, in configuration order; the first is used when a request names no tenant.
  public var tenants: [String]

  public init(certificate: String, tenants: [String]) {
    self.certificate = certificate
    self.tenants = tenants
  }

  /// Why `certificate` cannot select any certificate, or `nil` when it can.
  public var selectorProblem: String? {
    let value = Self.selectorValue(certificate).value
    return value.isEmpty ? "certificate \"\(certificate)\" names nothing after its prefix" : nil
  }

  /// Whether this entry's selector names `identity`.
  public func selects(_ identity: ClientIdentity) -> Bool {
    let (kind, value) = Self.selectorValue(certificate)
    guard !value.isEmpty else { return false }
    switch kind {
    case .commonName:
      return identity.commonNames.contains(String(value))
    case .alternativeName(let prefix, let ignoringCase):
      return identity.alternativeNames.contains { name in
        guard name.hasPrefix(prefix) else { return false }
        let candidate = name.dropFirst(prefix.count)
        return ignoringCase ? candidate.lowercased() == value.lowercased() : candidate == value
      }
    }
  }

  private enum SelectorKind {
    case commonName
    case alternativeName(prefix: String, ignoringCase: Bool)
  }

  private static let alternativeNamePrefixes: [(String, Bool)] = [
    ("DNS:", true), ("IP:", false), ("URI:", false), ("email:", false),
  ]

  private static func selectorValue(_ selector: String) -> (kind: SelectorKind, value: Substring) {
    if selector.hasPrefix("CN=") { return (.commonName, selector.dropFirst(3)) }
    for (prefix, ignoringCase) in alternativeNamePrefixes where selector.hasPrefix(prefix) {
      return (.alternativeName(prefix: prefix, ignoringCase: ignoringCase), selector.dropFirst(prefix.count))
    }
    return (.commonName, Substring(selector))
  }
}

extension [IdentityTenants] {
  /// The tenants `identity` may write under: those of every entry selecting it, in configuration
  /// order, without repeats; empty when no entry selects it.
  public func tenants(for identity: ClientIdentity) -> [String] {
    var tenants: [String] = []
    for entry in self where entry.selects(identity) {
      for tenant in entry.tenants where !tenants.contains(tenant) { tenants.append(tenant) }
    }
    return tenants
  }
}
