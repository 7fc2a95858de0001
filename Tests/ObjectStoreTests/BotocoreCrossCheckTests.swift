import ObjectStore
import Testing

/// An independent cross-check: S3 PUTs with Object Lock headers, signed here and by botocore
/// 1.43.11's `S3SigV4Auth` (a real AWS implementation). The expected `Authorization` values
/// were produced once on 2026-12-05 with
///
///     creds = Credentials("AKIAOBJECTLOCKEXAMPLE", "objectlock/secret+EXAMPLEKEY", token)
///     req = AWSRequest(method="PUT", url=URL, headers=HEADERS, data=b"sealed segment bytes\n")
///     req.context["payload_signing_enabled"] = True
///     with mock.patch("botocore.auth.get_current_datetime",
///                     return_value=datetime.datetime(2026, 12, 5, 14, 30, 0)):
///         S3SigV4Auth(creds, "s3", REGION).add_auth(req)
///     print(req.headers["Authorization"])
///
/// with the URL, headers, token and region of each case below (region `default` for the
/// Ceph RGW endpoints, `us-west-2` for the AWS one).
@Suite struct BotocoreCrossCheckTests {
  struct Case: Sendable, CustomTestStringConvertible {
    var name: String
    var region: String
    var sessionToken: String?
    var path: String
    var query: [QueryParameter]
    var headers: [HTTPField]
    var authorization: String
    var testDescription: String { name }
  }

  static let cases: [Case] = [
    Case(
      name: "governance retention with a checksum, Ceph RGW", region: "default", sessionToken: nil,
      path: "/evidence/segments/2026/12/05/seg-000001.zst", query: [],
      headers: [
        HTTPField("Host", "rgw.example:7480"),
        HTTPField("x-amz-object-lock-mode", "GOVERNANCE"),
        HTTPField("x-amz-object-lock-retain-until-date", "2027-12-05T00:00:00Z"),
        HTTPField("x-amz-checksum-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        HTTPField("Content-Type", "application/zstd"),
      ],
      authorization:
        "AWS4-HMAC-SHA256 Credential=AKIAOBJECTLOCKEXAMPLE/20261205/default/s3/aws4_request, SignedHeaders="
        + "content-type;host;x-amz-checksum-sha256;x-amz-content-sha256;x-amz-date;x-amz-object-lock-mode;"
        + "x-amz-object-lock-retain-until-date, "
        + "Signature=d0ca53668f1ac1cd7e868694f1e0ffd451c0d543d4da064848ac916151931e58"),
    Case(
      name: "compliance retention, legal hold and a session token, encoded key", region: "us-west-2",
      sessionToken: "FQoGZXIvYXdzEXAMPLETOKEN", path: "/evidence/tenant%20a/seg%24001.zst", query: [],
      headers: [
        HTTPField("Host", "s3.us-west-2.amazonaws.com"),
        HTTPField("x-amz-object-lock-mode", "COMPLIANCE"),
        HTTPField("x-amz-object-lock-retain-until-date", "2030-01-01T00:00:00.000Z"),
        HTTPField("x-amz-object-lock-legal-hold", "ON"),
        HTTPField("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
      ],
      authorization:
        "AWS4-HMAC-SHA256 Credential=AKIAOBJECTLOCKEXAMPLE/20261205/us-west-2/s3/aws4_request, SignedHeaders="
        + "content-md5;host;x-amz-content-sha256;x-amz-date;x-amz-object-lock-legal-hold;x-amz-object-lock-mode;"
        + "x-amz-object-lock-retain-until-date;x-amz-security-token, "
        + "Signature=7feaf7e497cdac7b442e2179b6cf2a0dab1ab11b0fa8b638770d00007a6c02fd"),
    Case(
      name: "legal hold subresource, Ceph RGW", region: "default", sessionToken: nil,
      path: "/evidence/seg-000002.zst", query: [QueryParameter("legal-hold")],
      headers: [HTTPField("Host", "rgw.example:7480"), HTTPField("x-amz-object-lock-legal-hold", "OFF")],
      authorization:
        "AWS4-HMAC-SHA256 Credential=AKIAOBJECTLOCKEXAMPLE/20261205/default/s3/aws4_request, SignedHeaders="
        + "host;x-amz-content-sha256;x-amz-date;x-amz-object-lock-legal-hold, "
        + "Signature=e7e93802697d5a3c87469155d1a330b5fc79359b159628146e97c37e2db62e11"),
  ]

  @Test(arguments: cases)
  func matchesBotocore(_ check: Case) throws {
    let signer = try SigV4Signer.s3(
      credentials: try AWSCredentials(
        accessKeyID: "AKIAOBJECTLOCKEXAMPLE", secretAccessKey: "objectlock/secret+EXAMPLEKEY",
        sessionToken: check.sessionToken),
      region: check.region)
    let signed = try signer.sign(
      SigV4Request(method: "PUT", path: check.path, query: check.query, headers: check.headers),
      payload: .bytes(Array("sealed segment bytes\n".utf8)),
      at: try SigningTime(secondsSince1970: 1_796_481_000))
    #expect(signed.authorization == check.authorization)
    #expect(
      signed.addedHeaders.contains(
        HTTPField("x-amz-content-sha256", "ad0112f7cb44e65778a8179d2cc5cda2f72b53823d39aa0f705fc36ceaedc0c9")))
    #expect(signed.addedHeaders.first == HTTPField("x-amz-date", "20261205T143000Z"))
  }
}
