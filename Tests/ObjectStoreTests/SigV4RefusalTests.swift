import ObjectStore
import Testing

/// What the signer refuses, and the inputs it must not let change meaning silently.
@Suite struct SigV4RefusalTests {
  static let host = HTTPField("Host", "rgw.example:7480")

  static func signer() throws -> SigV4Signer {
    try SigV4Signer.s3(credentials: try AWSCredentials(accessKeyID: "AKID", secretAccessKey: "s"), region: "default")
  }

  static func time() throws -> SigningTime { try SigningTime(secondsSince1970: 1_369_353_600) }

  static func refusal(_ request: SigV4Request, payload: SigV4Payload = .unsigned) -> SigV4Error? {
    #expect(throws: SigV4Error.self) { try signer().sign(request, payload: payload, at: time()) }
  }

  static func put(_ headers: [HTTPField], path: String = "/b/k") -> SigV4Request {
    SigV4Request(method: "PUT", path: path, headers: [host] + headers)
  }

  @Test(arguments: [
    "a\nb", "a\r\nb", "a\rb", "a\r\n", "a\n", "a\u{0}b", "a\u{1}b", "a\u{7f}b", "a\u{1b}[31mb",
    "GOVERNANCE\r\nx-amz-object-lock-mode: NONE",
  ])
  func controlCharactersAndUnfoldedLineBreaksInAValueAreRefused(_ value: String) {
    let error = Self.refusal(Self.put([HTTPField("x-amz-object-lock-mode", value)]))
    #expect(error?.code == .invalidHeaderValue)
    #expect(error?.message.hasPrefix("header x-amz-object-lock-mode's value holds") == true)
  }

  @Test func foldedLinesAndTabsAreOneSpaceAsTheSuiteSigns() throws {
    let folded = try Self.signer().sign(
      Self.put([HTTPField("X-Meta", " a\r\n\tb \n  c\t\td ")]), payload: .unsigned, at: Self.time())
    #expect(folded.canonicalRequest.contains("\nx-meta:a b c d\n"))
    let plain = try Self.signer().sign(Self.put([HTTPField("x-meta", "a b c d")]), payload: .unsigned, at: Self.time())
    #expect(folded.signature == plain.signature)
    // UTF-8 beyond ASCII is a value's own bytes, not a control character.
    let utf8 = try Self.signer().sign(Self.put([HTTPField("x-amz-meta-n", "é ሴ")]), payload: .unsigned, at: Self.time())
    #expect(utf8.canonicalRequest.contains("\nx-amz-meta-n:é ሴ\n"))
  }

  @Test(arguments: ["", "x meta", "x:meta", "x\nmeta", "x(meta)", "é"])
  func headerNamesMustBeTokens(_ name: String) {
    #expect(Self.refusal(Self.put([HTTPField(name, "v")]))?.code == .invalidHeaderName)
  }

  @Test(arguments: ["Authorization", "X-Amz-Date", "x-amz-security-token", "X-AMZ-CONTENT-SHA256"])
  func headersTheSignerOwnsAreRefused(_ name: String) {
    let error = Self.refusal(Self.put([HTTPField(name, "v")]))
    #expect(error?.code == .reservedName)
    #expect(error?.message == "header \(name) is set by the signer, not the caller")
  }

  @Test func theHostIsRequired() {
    #expect(Self.refusal(SigV4Request(method: "GET", path: "/", headers: []))?.code == .missingHost)
  }

  @Test(arguments: ["", "b/k", "/b/k?x=1", "/b/k#f", "/b/%", "/b/%4", "/b/%zz", "http://host/b/k"])
  func pathsThatAreNotWirePathsAreRefused(_ path: String) {
    #expect(Self.refusal(Self.put([], path: path))?.code == .invalidPath)
  }

  @Test func s3PathsAreNeitherNormalizedNorDoubleEncoded() throws {
    for (path, canonical) in [
      ("/b//k/./x/../y", "/b//k/./x/../y"), ("/b/a%2fb", "/b/a%2Fb"), ("/b/a b+c", "/b/a%20b%2Bc"),
      ("/b/é", "/b/%C3%A9"), ("/b/k~-._", "/b/k~-._"),
    ] {
      let signed = try Self.signer().sign(Self.put([], path: path), payload: .unsigned, at: Self.time())
      #expect(signed.canonicalRequest.hasPrefix("PUT\n\(canonical)\n"), "\(path)")
    }
    let other = SigV4Signer(
      credentials: try AWSCredentials(accessKeyID: "AKID", secretAccessKey: "s"),
      scope: try SigningScope(region: "us-east-1", service: "service"), pathRules: .normalizedDoubleEncoded,
      addsContentSHA256Header: false)
    let signed = try other.sign(Self.put([], path: "/b//k/./x/../a%20b"), payload: .unsigned, at: Self.time())
    #expect(signed.canonicalRequest.hasPrefix("PUT\n/b/k/a%2520b\n"))
  }

  @Test func queryEncodingAndOrder() throws {
    let signed = try Self.signer().sign(
      SigV4Request(
        method: "GET", path: "/b",
        query: [
          QueryParameter("b", "x y"), QueryParameter("a", "2"), QueryParameter("a", "1"), QueryParameter("a!", "'"),
          QueryParameter("A", "+/=&"), QueryParameter("~u", "-._~"), QueryParameter("key", "é"),
        ],
        headers: [Self.host]),
      payload: .unsigned, at: Self.time())
    #expect(signed.canonicalQuery == "A=%2B%2F%3D%26&a=1&a=2&a%21=%27&b=x%20y&key=%C3%A9&~u=-._~")
  }

  @Test func badMethodsPayloadHashesAndScopesAreRefused() throws {
    #expect(Self.refusal(SigV4Request(method: "", path: "/", headers: [Self.host]))?.code == .invalidMethod)
    #expect(Self.refusal(SigV4Request(method: "GET /x", path: "/", headers: [Self.host]))?.code == .invalidMethod)
    for hash in ["", "abc", String(repeating: "A", count: 64), String(repeating: "g", count: 64)] {
      #expect(Self.refusal(Self.put([]), payload: .sha256Hex(hash))?.code == .invalidPayloadHash)
    }
    for (region, service) in [("", "s3"), ("us-east-1", ""), ("us/east", "s3"), ("us east", "s3"), ("r", "s\n3")] {
      let error = #expect(throws: SigV4Error.self) { try SigningScope(region: region, service: service) }
      #expect(error?.code == .invalidScope)
    }
  }

  @Test func theSessionTokenIsSignedAndSent() throws {
    let signer = try SigV4Signer.s3(
      credentials: try AWSCredentials(accessKeyID: "AKID", secretAccessKey: "s", sessionToken: "TOKEN"),
      region: "default")
    let signed = try signer.sign(Self.put([]), payload: .unsigned, at: Self.time())
    #expect(
      signed.addedHeaders.map(\.name) == [
        "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization",
      ])
    #expect(signed.authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"))
    #expect(signed.addedHeaders[1].value == "UNSIGNED-PAYLOAD")
  }
}
