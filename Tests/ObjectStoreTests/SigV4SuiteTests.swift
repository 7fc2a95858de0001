import ObjectStore
import Testing

/// AWS's SigV4 test suite: service `service`, region us-east-1, 2015-08-30T12:36:00Z, the
/// suite's example key pair. Its paths follow the rules of every service but S3 (normalized,
/// encoded once more), and it signs no `x-amz-content-sha256`.
@Suite struct SigV4SuiteTests {
  /// 2015-08-30T12:36:00Z.
  static let suiteTime = 1_440_938_160

  static func signer(sessionToken: String?) throws -> SigV4Signer {
    let credentials = try AWSCredentials(
      accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      sessionToken: sessionToken)
    return SigV4Signer(
      credentials: credentials, scope: try SigningScope(region: "us-east-1", service: "service"),
      pathRules: .normalizedDoubleEncoded, addsContentSHA256Header: false)
  }

  @Test(arguments: suiteVectors)
  func signsLikeTheSuite(_ vector: SuiteVector) throws {
    let signed = try Self.signer(sessionToken: vector.sessionToken).sign(
      SigV4Request(method: vector.method, path: vector.path, query: vector.query, headers: vector.headers),
      payload: .bytes(Array(vector.body.utf8)), at: try SigningTime(secondsSince1970: Int64(Self.suiteTime)))
    #expect(signed.canonicalRequest == vector.canonicalRequest)
    #expect(signed.stringToSign == vector.stringToSign)
    #expect(signed.authorization == vector.authorization)
    #expect(signed.addedHeaders.first == HTTPField("x-amz-date", "20150830T123600Z"))
    #expect(signed.addedHeaders.last == HTTPField("authorization", vector.authorization))
    #expect(signed.addedHeaders.contains { $0.name == "x-amz-security-token" } == (vector.sessionToken != nil))
  }

  @Test func everyNamedCaseIsCovered() {
    let names = Set(suiteVectors.map(\.name))
    for name in [
      "get-vanilla", "get-vanilla-query", "get-vanilla-query-order-key-case", "get-vanilla-query-unreserved",
      "get-vanilla-utf8-query", "get-header-key-duplicate", "get-header-value-multiline", "get-header-value-order",
      "get-header-value-trim", "get-unreserved", "get-utf8", "get-space", "get-slash", "get-slashes",
      "get-slash-dot-slash", "get-slash-pointless-dot", "get-relative", "get-relative-relative", "post-vanilla",
      "post-vanilla-query", "post-header-key-case", "post-header-key-sort", "post-header-value-case",
      "post-x-www-form-urlencoded", "post-x-www-form-urlencoded-parameters", "post-sts-header-before",
      "post-sts-header-after",
    ] {
      #expect(names.contains(name), "missing \(name)")
    }
    #expect(suiteVectors.count == 34)
  }

  /// Signing is a function of its inputs: the same inputs sign the same, a second or a byte
  /// more does not.
  @Test func theSameInputsSignTheSameAndEveryInputMatters() throws {
    let request = SigV4Request(method: "GET", path: "/", headers: [HTTPField("Host", "example.amazonaws.com")])
    let time = try SigningTime(secondsSince1970: Int64(Self.suiteTime))
    let base = try Self.signer(sessionToken: nil).sign(request, payload: .bytes([]), at: time)
    #expect(try Self.signer(sessionToken: nil).sign(request, payload: .bytes([]), at: time) == base)
    let later = try Self.signer(sessionToken: nil).sign(
      request, payload: .bytes([]), at: try SigningTime(secondsSince1970: Int64(Self.suiteTime + 1)))
    #expect(later.signature != base.signature)
    let withBody = try Self.signer(sessionToken: nil).sign(request, payload: .bytes([0]), at: time)
    #expect(withBody.signature != base.signature)
  }
}
