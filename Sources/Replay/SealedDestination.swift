#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An IPv4 or IPv6 address.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
  case v4(UInt32)
  case v6([UInt8])

  /// Parses a numeric address in the standard text forms (dotted quad, RFC 4291 IPv6).
  public init?(_ text: String) {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
      self = .v4(UInt32(bigEndian: v4.s_addr))
      return
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 {
      self = IPAddress(v6Bytes: withUnsafeBytes(of: &v6) { Array($0) })
      return
    }
    return nil
  }

  /// An IPv6 address; an IPv4-mapped one (`::ffff:a.b.c.d`) is the IPv4 address it maps,
  /// so a mapped address is judged by the same rules as the plain one.
  init(v6Bytes bytes: [UInt8]) {
    if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
      self = .v4(UInt32(bytes[12]) << 24 | UInt32(bytes[13]) << 16 | UInt32(bytes[14]) << 8 | UInt32(bytes[15]))
    } else {
      self = .v6(bytes)
    }
  }

  /// 32 or 128.
  var bitWidth: Int {
    switch self {
    case .v4: 32
    case .v6: 128
    }
  }

  /// 127.0.0.0/8 or ::1.
  public var isLoopback: Bool {
    switch self {
    case .v4(let value): value >> 24 == 127
    case .v6(let bytes): bytes == [UInt8](repeating: 0, count: 15) + [1]
    }
  }

  public var description: String {
    switch self {
    case .v4(let value):
      return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    case .v6(var bytes):
      var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
      let written = bytes.withUnsafeMutableBytes { raw in
        inet_ntop(AF_INET6, raw.baseAddress, &text, socklen_t(text.count))
      }
      guard written != nil else { return "?" }
      return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
  }
}

extension IPAddress {
  /// Calls `body` with this address and `port` as a C socket address.
  func withSocketAddress<Result, Failure: Error>(
    port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(Failure) -> Result
  ) throws(Failure) -> Result {
    var storage = sockaddr_storage()
    let length: socklen_t
    switch self {
    case .v4(let value):
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
      address.sin_addr = in_addr(s_addr: value.bigEndian)
      withUnsafeBytes(of: address) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
    case .v6(let bytes):
      var address = sockaddr_in6()
      address.sin6_family = sa_family_t(AF_INET6)
      address.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
      withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: bytes.prefix(16)) }
      withUnsafeBytes(of: address) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    }
    return try withUnsafePointer(to: &storage) { pointer throws(Failure) in
      try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(Failure) in
        try body(address, length)
      }
    }
  }
}

/// An OTLP endpoint URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` gives it: `http://HOST[:PORT][/BASE]`.
public struct EndpointURL: Sendable, Equatable, CustomStringConvertible {
  /// The host as written, without IPv6 brackets.
  public var host: String
  /// The TCP port (80 when the URL has none).
  public var port: Int
  /// The path prefix, without a trailing slash ("" for none); HTTP appends `/v1/<signal>`.
  public var basePath: String
  /// Whether `host` was written as an IPv6 literal (it needs brackets in URLs and Host headers).
  public var isIPv6Literal: Bool

  /// Parses `text`. Only plain-text `http` is supported: a sealed stack is reached over loopback
  /// or an explicitly allowed address, and this tool has no TLS trust configuration.
  public init(_ text: String) throws(ReplayError) {
    let lower = text.lowercased()
    guard lower.hasPrefix("http://") else {
      let why =
        lower.hasPrefix("https://")
        ? "https is not supported (plain-text http only)" : "the URL must start with http://"
      throw ReplayError(.invalidEndpoint, "endpoint \(text): \(why)")
    }
    var rest = Substring(text.dropFirst("http://".count))
    let authority: Substring
    if let slash = rest.firstIndex(of: "/") {
      authority = rest[..<slash]
      rest = rest[slash...]
    } else {
      authority = rest
      rest = ""
    }
    guard !rest.contains("?"), !rest.contains("#"), !authority.contains("@") else {
      throw ReplayError(.invalidEndpoint, "endpoint \(text): query, fragment and user info are not supported")
    }
    guard let (host, port, isV6) = Self.splitHostPort(authority, defaultPort: 80) else {
      throw ReplayError(.invalidEndpoint, "endpoint \(text): cannot read HOST[:PORT]")
    }
    self.host = host
    self.port = port
    self.isIPv6Literal = isV6
    var base = String(rest)
    while base.hasSuffix("/") { base.removeLast() }
    self.basePath = base
  }

  /// `host:port`, `[v6]:port`, or without the port when `defaultPort` is given.
  static func splitHostPort(_ text: Substring, defaultPort: Int?) -> (String, Int, Bool)? {
    var host: Substring
    var portText: Substring?
    var isV6 = false
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]") else { return nil }
      host = text[text.index(after: text.startIndex)..<close]
      isV6 = true
      let after = text[text.index(after: close)...]
      if !after.isEmpty {
        guard after.hasPrefix(":") else { return nil }
        portText = after.dropFirst()
      }
    } else {
      if let colon = text.lastIndex(of: ":") {
        host = text[..<colon]
        portText = text[text.index(after: colon)...]
        guard !host.contains(":") else { return nil }  // bare IPv6 needs brackets
      } else {
        host = text
      }
    }
    guard !host.isEmpty else { return nil }
    let port: Int
    if let portText {
      guard let value = Int(portText), (1...65535).contains(value), portText.allSatisfy(\.isASCII) else {
        return nil
      }
      port = value
    } else {
      guard let defaultPort else { return nil }
      port = defaultPort
    }
    return (String(host), port, isV6)
  }

  /// The URL path for `signal`'s export (`/v1/traces`…).
  public func path(for signalPath: String) -> String { basePath + "/v1/" + signalPath }

  /// The `Host` header value.
  public var hostHeader: String { (isIPv6Literal ? "[\(host)]" : host) + ":\(port)" }

  public var description: String { "http://\(hostHeader)\(basePath)" }
}

/// One `--allow` entry: an address, a CIDR range or a host name, and a port or `*`.
public struct AllowRule: Sendable, Equatable, CustomStringConvertible {
  /// Which addresses the rule admits.
  public enum Hosts: Sendable, Equatable {
    case prefix(IPAddress, bits: Int)
    /// A host name, resolved once when the allowlist is built.
    case name(String)
  }

  /// The addresses the rule admits.
  public var hosts: Hosts
  /// `nil` means any port.
  public var port: Int?
  /// The rule as written, for messages.
  public let text: String

  /// Parses `HOST:PORT`, `[V6]:PORT`, `10.0.0.0/8:4318`, `[fd00::/8]:*`.
  public init(_ text: String) throws(ReplayError) {
    self.text = text
    let bad = ReplayError(
      .invalidEndpoint, "--allow \(text): expected HOST:PORT, [IPV6]:PORT or ADDRESS/BITS:PORT (PORT may be *)")
    var body = Substring(text)
    var anyPort = false
    if body.hasSuffix(":*") {
      anyPort = true
      body = body.dropLast(2)
    }
    var hostPart: Substring
    if anyPort {
      hostPart = body
      if hostPart.hasPrefix("["), hostPart.hasSuffix("]") { hostPart = hostPart.dropFirst().dropLast() }
      port = nil
    } else {
      guard let (host, parsedPort, _) = EndpointURL.splitHostPort(body, defaultPort: nil) else { throw bad }
      hostPart = Substring(host)
      port = parsedPort
    }
    guard !hostPart.isEmpty else { throw bad }
    if let slash = hostPart.firstIndex(of: "/") {
      guard let address = IPAddress(String(hostPart[..<slash])),
        let bits = Int(hostPart[hostPart.index(after: slash)...])
      else { throw bad }
      guard (0...address.bitWidth).contains(bits) else { throw bad }
      hosts = .prefix(address, bits: bits)
    } else if let address = IPAddress(String(hostPart)) {
      hosts = .prefix(address, bits: address.bitWidth)
    } else {
      guard hostPart.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }) else {
        throw bad
      }
      hosts = .name(String(hostPart).lowercased())
    }
  }

  public var description: String { text }
}

/// The sealed-mode allowlist: loopback (127.0.0.0/8, ::1) on any port, plus the `--allow` rules.
public struct Allowlist: Sendable {
  struct Range: Sendable {
    var address: IPAddress
    var bits: Int
    var port: Int?
    var rule: String
  }

  let ranges: [Range]

  /// Builds the allowlist, resolving each host name rule once, now.
  public init(rules: [AllowRule], resolver: (String) throws(ReplayError) -> [IPAddress] = HostResolver.resolve)
    throws(ReplayError)
  {
    var ranges: [Range] = [
      Range(address: .v4(127 << 24), bits: 8, port: nil, rule: "loopback"),
      Range(address: .v6([UInt8](repeating: 0, count: 15) + [1]), bits: 128, port: nil, rule: "loopback"),
    ]
    for rule in rules {
      switch rule.hosts {
      case .prefix(let address, let bits):
        ranges.append(Range(address: address, bits: bits, port: rule.port, rule: rule.text))
      case .name(let name):
        for address in try resolver(name) {
          ranges.append(Range(address: address, bits: address.bitWidth, port: rule.port, rule: rule.text))
        }
      }
    }
    self.ranges = ranges
  }

  /// Whether `address`:`port` falls within some rule.
  public func allows(_ address: IPAddress, port: Int) -> Bool {
    ranges.contains { range in
      (range.port == nil || range.port == port) && Self.prefixMatches(range.address, range.bits, address)
    }
  }

  static func prefixMatches(_ network: IPAddress, _ bits: Int, _ address: IPAddress) -> Bool {
    switch (network, address) {
    case (.v4(let net), .v4(let value)):
      guard bits > 0 else { return true }
      let mask: UInt32 = bits >= 32 ? .max : ~(UInt32.max >> UInt32(bits))
      return net & mask == value & mask
    case (.v6(let net), .v6(let value)):
      var remaining = bits
      for index in 0..<16 where remaining > 0 {
        let take = min(8, remaining)
        let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
        if net[index] & mask != value[index] & mask { return false }
        remaining -= take
      }
      return true
    default:
      return false
    }
  }
}

/// A destination that passed the sealed-mode check: the endpoint and the addresses it resolved
/// to, all allowed. Connections go to these addresses only, never to a fresh lookup of the name,
/// so a DNS answer that changes mid-replay cannot move traffic outside the allowlist.
public struct SealedDestination: Sendable {
  /// The endpoint as given.
  public let endpoint: EndpointURL
  /// Every address the host resolved to, all allowed; the only addresses replay connects to.
  public let addresses: [IPAddress]

  /// Resolves `endpoint`'s host once and requires every address to be allowed.
  /// - Throws: ``ReplayError`` `.endpointNotAllowed` naming the first address outside the
  ///   allowlist, or `.unresolvableHost`.
  public init(
    endpoint: EndpointURL, allowlist: Allowlist,
    resolver: (String) throws(ReplayError) -> [IPAddress] = HostResolver.resolve
  ) throws(ReplayError) {
    let addresses = try resolver(endpoint.host)
    guard !addresses.isEmpty else {
      throw ReplayError(.unresolvableHost, "endpoint host \(endpoint.host) has no address")
    }
    for address in addresses where !allowlist.allows(address, port: endpoint.port) {
      let via =
        IPAddress(endpoint.host) == nil
        ? " (\(endpoint.host) resolves to \(addresses.map(\.description).joined(separator: ", ")))" : ""
      throw ReplayError(
        .endpointNotAllowed,
        "endpoint \(endpoint): \(address) port \(endpoint.port) is not allowed\(via); sealed mode allows loopback and --allow HOST:PORT entries only"
      )
    }
    self.endpoint = endpoint
    self.addresses = addresses
  }
}

/// Name resolution through the system resolver (`getaddrinfo`), once per name.
public enum HostResolver {
  /// Every distinct address `host` resolves to, in the resolver's order.
  public static func resolve(_ host: String) throws(ReplayError) -> [IPAddress] {
    if let literal = IPAddress(host) { return [literal] }
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    #if canImport(Glibc)
      hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    #else
      hints.ai_socktype = SOCK_STREAM
    #endif
    var result: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, nil, &hints, &result)
    guard status == 0, let first = result else {
      throw ReplayError(.unresolvableHost, "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
    }
    defer { freeaddrinfo(first) }
    var addresses: [IPAddress] = []
    var cursor: UnsafeMutablePointer<addrinfo>? = first
    while let entry = cursor {
      if let sockaddr = entry.pointee.ai_addr {
        switch entry.pointee.ai_family {
        case AF_INET:
          let value = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
          addresses.append(.v4(UInt32(bigEndian: value)))
        case AF_INET6:
          var v6 = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
          addresses.append(IPAddress(v6Bytes: withUnsafeBytes(of: &v6) { Array($0) }))
        default:
          break
        }
      }
      cursor = entry.pointee.ai_next
    }
    var seen = Set<IPAddress>()
    return addresses.filter { seen.insert($0).inserted }
  }
}
