import EvidenceIO
import ObjectStore
import Testing

/// The worked examples of the Amazon S3 API Reference ("Signature Calculations for the
/// Authorization Header: Transferring Payload in a Single Chunk" and "Authenticating Requests:
/// Using Query Parameters"): bucket examplebucket, key pair AKIAIOSFODNN7EXAMPLE, us-east-1,
/// 2013-05-24T00:00:00Z. Each expected canonical request is checked against the SHA-256 the
/// documentation prints for it in the string to sign, so a transcription slip would show.
@Suite struct S3ExampleTests {
  static let host = HTTPField("Host", "examplebucket.s3.amazonaws.com")

  static func signer() throws -> SigV4Signer {
    try SigV4Signer.s3(
      credentials: try AWSCredentials(
        accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
      region: "us-east-1")
  }

  static func time() throws -> SigningTime { try SigningTime(secondsSince1970: 1_369_353_600) }

  static func stringToSign(hashing canonicalRequest: String) -> String {
    "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
      + SHA256Digest.hex(of: Array(canonicalRequest.utf8))
  }

  @Test func getObjectWithRange() throws {
    let signed = try Self.signer().sign(
      SigV4Request(method: "GET", path: "/test.txt", headers: [Self.host, HTTPField("Range", "bytes=0-9")]),
      payload: .bytes([]), at: Self.time())
    let expected = """
      GET
      /test.txt

      host:examplebucket.s3.amazonaws.com
      range:bytes=0-9
      x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
      x-amz-date:20130524T000000Z

      host;range;x-amz-content-sha256;x-amz-date
      e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
      """
    #expect(signed.canonicalRequest == expected)
    #expect(
      SHA256Digest.hex(of: Array(expected.utf8)) == "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
    #expect(signed.stringToSign == Self.stringToSign(hashing: expected))
    #expect(
      signed.authorization
        == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    #expect(
      signed.addedHeaders.map(\.name) == ["x-amz-date", "x-amz-content-sha256", "authorization"])
  }

  @Test func putObject() throws {
    // The key is `test$file.text`; S3 encodes the path once (`%24`), the wire path given raw or
    // encoded signs the same.
    #expect(SigV4Encoding.encode("/test$file.text", keepingSlash: true) == "/test%24file.text")
    for path in ["/test$file.text", "/test%24file.text"] {
      let signed = try Self.signer().sign(
        SigV4Request(
          method: "PUT", path: path,
          headers: [
            HTTPField("Date", "Fri, 24 May 2013 00:00:00 GMT"), Self.host,
            HTTPField("x-amz-storage-class", "REDUCED_REDUNDANCY"),
          ]),
        payload: .bytes(Array("Welcome to Amazon S3.".utf8)), at: Self.time())
      let expected = """
        PUT
        /test%24file.text

        date:Fri, 24 May 2013 00:00:00 GMT
        host:examplebucket.s3.amazonaws.com
        x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
        x-amz-date:20130524T000000Z
        x-amz-storage-class:REDUCED_REDUNDANCY

        date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class
        44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
        """
      #expect(signed.canonicalRequest == expected)
      #expect(
        SHA256Digest.hex(of: Array(expected.utf8)) == "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"
      )
      #expect(signed.stringToSign == Self.stringToSign(hashing: expected))
      #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }
  }

  @Test func getBucketLifecycle() throws {
    let signed = try Self.signer().sign(
      SigV4Request(method: "GET", path: "/", query: [QueryParameter("lifecycle")], headers: [Self.host]),
      payload: .sha256Hex(SigV4Payload.emptySHA256Hex), at: Self.time())
    #expect(signed.canonicalQuery == "lifecycle=")
    #expect(
      SHA256Digest.hex(of: Array(signed.canonicalRequest.utf8))
        == "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca")
    #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
  }

  @Test func getBucketListObjects() throws {
    // Given out of order; signed sorted.
    let signed = try Self.signer().sign(
      SigV4Request(
        method: "GET", path: "/", query: [QueryParameter("prefix", "J"), QueryParameter("max-keys", "2")],
        headers: [Self.host]),
      payload: .bytes([]), at: Self.time())
    #expect(signed.canonicalQuery == "max-keys=2&prefix=J")
    #expect(
      SHA256Digest.hex(of: Array(signed.canonicalRequest.utf8))
        == "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7")
    #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
  }

  @Test func presignedGetObject() throws {
    let presigned = try Self.signer().presign(
      SigV4Request(method: "GET", path: "/test.txt", headers: [Self.host]), lifetime: 86_400, at: Self.time())
    let expected = """
      GET
      /test.txt
      X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host
      host:examplebucket.s3.amazonaws.com

      host
      UNSIGNED-PAYLOAD
      """
    #expect(presigned.canonicalRequest == expected)
    #expect(
      SHA256Digest.hex(of: Array(expected.utf8)) == "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04")
    #expect(presigned.stringToSign == Self.stringToSign(hashing: expected))
    #expect(presigned.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    #expect(
      presigned.query
        == "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
        + "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        + "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
  }

  @Test func presignedURLSignsTheSessionTokenAndRefusesBadLifetimes() throws {
    let signer = try SigV4Signer.s3(
      credentials: try AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret", sessionToken: "tok/en+"),
      region: "us-east-1")
    let request = SigV4Request(method: "GET", path: "/b/k", headers: [Self.host])
    let presigned = try signer.presign(request, lifetime: 60, at: Self.time())
    #expect(presigned.query.contains("&X-Amz-Security-Token=tok%2Fen%2B&"))
    #expect(presigned.canonicalRequest.contains("X-Amz-Security-Token=tok%2Fen%2B"))
    for lifetime in [0, -1, 604_801] {
      #expect(throws: SigV4Error.self) { try signer.presign(request, lifetime: lifetime, at: Self.time()) }
    }
    #expect(try signer.presign(request, lifetime: 604_800, at: Self.time()).signature.count == 64)
    let clash = SigV4Request(
      method: "GET", path: "/b/k", query: [QueryParameter("x-amz-signature", "0")], headers: [Self.host])
    let error = #expect(throws: SigV4Error.self) { try signer.presign(clash, lifetime: 60, at: Self.time()) }
    #expect(error?.code == .reservedName)
  }
}
