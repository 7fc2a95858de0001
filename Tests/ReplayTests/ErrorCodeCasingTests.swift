import Manifest
import Replay
import Testing

/// Every `--json` output spells its codes as the bundle format spells its reason codes.
@Suite struct ErrorCodeCasingTests {
  static func isScreamingSnake(_ text: String) -> Bool {
    text.wholeMatch(of: /[A-Z][A-Z0-9]*(_[A-Z0-9]+)*/) != nil
  }

  @Test func replayAndExportCodesUseTheReasonCodeCasing() {
    #expect(Self.isScreamingSnake(ReasonCode.sigUntrustedKey.rawValue))
    for code in ReplayError.Code.allCases {
      #expect(Self.isScreamingSnake(code.rawValue), "\(code)")
    }
    #expect(ReplayError.Code.rejectedPermanently.rawValue == "REJECTED_PERMANENTLY")
  }
}
