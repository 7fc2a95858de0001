import Testing

@testable import Replay

@Suite struct SealedModeTests {
  let loopbackOnly: Allowlist

  init() throws {
    loopbackOnly = try Allowlist(rules: [])
  }

  func resolver(_ table: [String: [String]]) -> (String) throws(ReplayError) -> [IPAddress] {
    { (host: String) throws(ReplayError) -> [IPAddress] in
      guard let texts = table[host] else { throw ReplayError(.unresolvableHost, "no such host \(host)") }
      return texts.compactMap(IPAddress.init)
    }
  }

  @Test func loopbackIsAllowedByDefaultOnAnyPort() throws {
    for text in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
      let address = try #require(IPAddress(text))
      #expect(loopbackOnly.allows(address, port: 4318), "\(text)")
      #expect(loopbackOnly.allows(address, port: 1), "\(text)")
    }
  }

  @Test func everythingElseIsRefusedByDefault() throws {
    for text in ["10.1.2.3", "0.0.0.0", "128.0.0.1", "126.255.255.255", "::2", "::ffff:10.0.0.1", "fe80::1", "::"] {
      let address = try #require(IPAddress(text))
      #expect(!loopbackOnly.allows(address, port: 4318), "\(text)")
    }
  }

  @Test func allowRulesMatchAddressPrefixAndPort() throws {
    let allowlist = try Allowlist(rules: [
      AllowRule("10.1.2.3:4318"), AllowRule("192.168.0.0/16:*"), AllowRule("[fd00::/8]:4317"),
    ])
    #expect(allowlist.allows(try #require(IPAddress("10.1.2.3")), port: 4318))
    #expect(!allowlist.allows(try #require(IPAddress("10.1.2.3")), port: 4317))
    #expect(!allowlist.allows(try #require(IPAddress("10.1.2.4")), port: 4318))
    #expect(allowlist.allows(try #require(IPAddress("192.168.77.1")), port: 9))
    #expect(!allowlist.allows(try #require(IPAddress("192.169.0.1")), port: 9))
    #expect(allowlist.allows(try #require(IPAddress("fd12::1")), port: 4317))
    #expect(!allowlist.allows(try #require(IPAddress("fe12::1")), port: 4317))
  }

  @Test func malformedAllowRulesAreUsageErrors() {
    for text in ["10.1.2.3", "10.1.2.3:", "10.1.2.3:0", "10.1.2.3:70000", "10.0.0.0/33:1", "::1:4318", "a b:1", ":1"] {
      #expect(throws: ReplayError.self, "\(text)") { try AllowRule(text) }
    }
  }

  @Test func hostNameRulesAreResolvedOnceIntoAddresses() throws {
    let allowlist = try Allowlist(
      rules: [AllowRule("collector.internal:4318")], resolver: resolver(["collector.internal": ["10.9.9.9"]]))
    #expect(allowlist.allows(try #require(IPAddress("10.9.9.9")), port: 4318))
    #expect(!allowlist.allows(try #require(IPAddress("10.9.9.9")), port: 80))
  }

  @Test func endpointURLsAreParsedLikeOTLPBaseURLs() throws {
    let plain = try EndpointURL("http://127.0.0.1:4318")
    #expect(plain.host == "127.0.0.1" && plain.port == 4318 && plain.basePath == "")
    #expect(plain.path(for: "traces") == "/v1/traces")
    let based = try EndpointURL("http://localhost/otlp/")
    #expect(based.port == 80 && based.basePath == "/otlp" && based.path(for: "logs") == "/otlp/v1/logs")
    let v6 = try EndpointURL("http://[::1]:4317")
    #expect(v6.host == "::1" && v6.isIPv6Literal && v6.hostHeader == "[::1]:4317")
    for bad in [
      "https://127.0.0.1:4318", "127.0.0.1:4318", "http://:4318", "http://h:99999", "http://u@h:1", "http://h:1/?q",
    ] {
      #expect(throws: ReplayError.self, "\(bad)") { try EndpointURL(bad) }
    }
  }

  @Test func aHostIsAllowedOnlyIfEveryAddressItResolvesToIs() throws {
    let table = ["mixed.test": ["127.0.0.1", "10.1.2.3"], "local.test": ["127.0.0.1", "::1"]]
    let mixed = try EndpointURL("http://mixed.test:4318")
    let error = #expect(throws: ReplayError.self) {
      try SealedDestination(endpoint: mixed, allowlist: loopbackOnly, resolver: resolver(table))
    }
    #expect(error?.code == .endpointNotAllowed)
    #expect(error?.message.contains("10.1.2.3") == true)
    let local = try SealedDestination(
      endpoint: EndpointURL("http://local.test:4318"), allowlist: loopbackOnly, resolver: resolver(table))
    #expect(local.addresses.map(\.description) == ["127.0.0.1", "::1"])
  }

  @Test func numericHostFormsAreJudgedByTheAddressTheyMeanNotTheirText() throws {
    // glibc reads "167838211" as 10.1.2.3; the check must see the resolved address.
    let endpoint = try EndpointURL("http://167838211:4318")
    let error = #expect(throws: ReplayError.self) {
      try SealedDestination(endpoint: endpoint, allowlist: loopbackOnly)
    }
    #expect(error?.code == .endpointNotAllowed)
  }

  @Test func unresolvableHostsAreRefused() throws {
    let endpoint = try EndpointURL("http://nothing.invalid:4318")
    let error = #expect(throws: ReplayError.self) {
      try SealedDestination(endpoint: endpoint, allowlist: loopbackOnly, resolver: resolver([:]))
    }
    #expect(error?.code == .unresolvableHost)
    #expect(error?.isConfigurationError == true)
  }
}
