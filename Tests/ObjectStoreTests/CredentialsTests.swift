import Foundation
import ObjectStore
import Testing

@Suite struct CredentialsTests {
  static let complete = [
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "super/secret+KEY",
    "AWS_SESSION_TOKEN": "session-token-value", "AWS_REGION": "eu-central-1",
  ]

  @Test func readsTheAWSVariables() throws {
    let credentials = try AWSCredentials.fromEnvironment(Self.complete)
    #expect(credentials.accessKeyID == "AKIDEXAMPLE")
    #expect(credentials.sessionToken == "session-token-value")
    #expect(try AWSRegion.fromEnvironment(Self.complete) == "eu-central-1")
    var noToken = Self.complete
    noToken["AWS_SESSION_TOKEN"] = ""
    #expect(try AWSCredentials.fromEnvironment(noToken).sessionToken == nil)
    noToken["AWS_SESSION_TOKEN"] = nil
    #expect(try AWSCredentials.fromEnvironment(noToken).sessionToken == nil)
  }

  @Test(arguments: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
  func aMissingOrEmptyRequiredVariableIsNamed(_ name: String) {
    var environment = Self.complete
    environment[name] = nil
    let missing = #expect(throws: CredentialsError.self) { try AWSCredentials.fromEnvironment(environment) }
    #expect(missing?.code == .missingVariable)
    #expect(missing?.message == "\(name) is not set")
    for blank in ["", "  ", "\t"] {
      environment[name] = blank
      let empty = #expect(throws: CredentialsError.self) { try AWSCredentials.fromEnvironment(environment) }
      #expect(empty?.code == .emptyValue)
      #expect(empty?.message == "\(name) is set but empty")
    }
  }

  @Test func theRegionIsRequiredAndMustFitTheScope() {
    #expect(throws: CredentialsError.self) { try AWSRegion.fromEnvironment([:]) }
    for bad in ["", "us/east", "us east", "us-east-1\n"] {
      let error = #expect(throws: CredentialsError.self) { try AWSRegion.fromEnvironment(["AWS_REGION": bad]) }
      #expect(error?.code == (bad.isEmpty ? .emptyValue : .invalidValue))
    }
  }

  @Test func anEmptySecretOrBadKeyIdIsRefused() {
    let empty = #expect(throws: CredentialsError.self) {
      try AWSCredentials(accessKeyID: "AKID", secretAccessKey: "")
    }
    #expect(empty?.code == .emptyValue)
    for keyID in ["", "AK/ID", "AK ID", "AK,ID", "AK=ID", "AKID\r\n"] {
      #expect(throws: CredentialsError.self) { try AWSCredentials(accessKeyID: keyID, secretAccessKey: "s") }
    }
    for token in ["", "line\nbreak", "with space"] {
      #expect(throws: CredentialsError.self) {
        try AWSCredentials(accessKeyID: "AKID", secretAccessKey: "s", sessionToken: token)
      }
    }
  }

  @Test func noTextShowsTheSecretOrToken() throws {
    let credentials = try AWSCredentials.fromEnvironment(Self.complete)
    var dumped = ""
    dump(credentials, to: &dumped)
    for text in [
      credentials.description, credentials.debugDescription, "\(credentials)", String(reflecting: credentials), dumped,
    ] {
      #expect(!text.contains("super/secret+KEY"), "\(text)")
      #expect(!text.contains("session-token-value"), "\(text)")
      #expect(text.contains("AKIDEXAMPLE"), "\(text)")
    }
    #expect(
      credentials.description
        == "AWSCredentials(accessKeyID: AKIDEXAMPLE, secretAccessKey: <redacted>, sessionToken: <redacted>)")
    // Nor does an error about a bad token.
    let error = #expect(throws: CredentialsError.self) {
      try AWSCredentials(accessKeyID: "AKID", secretAccessKey: "s", sessionToken: "secret\ntoken")
    }
    #expect(error.map { !$0.message.contains("secret") } == true)
  }
}

@Suite struct SigningTimeTests {
  @Test func formatsInUTCWithoutAFormatter() throws {
    #expect(try SigningTime(secondsSince1970: 0).amzDate == "19700101T000000Z")
    #expect(try SigningTime(secondsSince1970: 1_440_938_160).amzDate == "20150830T123600Z")
    #expect(try SigningTime(secondsSince1970: 1_440_938_160).dateStamp == "20150830")
    // Leap days and century rules.
    #expect(try SigningTime(secondsSince1970: 951_782_400).amzDate == "20000229T000000Z")
    #expect(try SigningTime(secondsSince1970: 4_107_542_399).amzDate == "21000228T235959Z")
    #expect(try SigningTime(secondsSince1970: 4_107_542_400).amzDate == "21000301T000000Z")
    #expect(try SigningTime(secondsSince1970: 253_402_300_799).amzDate == "99991231T235959Z")
    #expect(try SigningTime(Date(timeIntervalSince1970: 1_369_353_600.9)).amzDate == "20130524T000000Z")
  }

  @Test func agreesWithTheCalendarEveryDayForCenturies() throws {
    // Every 997th day from 1970 to 9999 against Foundation's Gregorian UTC calendar.
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
    var day: Int64 = 0
    while day * 86_400 <= 253_402_300_799 {
      let seconds = day * 86_400 + 45_296  // 12:34:56
      let parts = calendar.dateComponents(
        [.year, .month, .day], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
      let expected =
        String(format: "%04d%02d%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0) + "T123456Z"
      #expect(try SigningTime(secondsSince1970: seconds).amzDate == expected)
      day += 997
    }
  }

  @Test func refusesTimesTheFormatCannotHold() {
    for seconds: Int64 in [-1, 253_402_300_800, .max] {
      let error = #expect(throws: SigV4Error.self) { try SigningTime(secondsSince1970: seconds) }
      #expect(error?.code == .invalidTime)
    }
  }
}
