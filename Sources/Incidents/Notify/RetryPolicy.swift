import Foundation

/// What one webhook attempt's outcome means for the delivery, and how long to wait before the
/// next attempt. Pure, so the policy is tested without sockets.
enum WebhookRetryPolicy {
  /// The longest computed backoff between attempts.
  static let maxBackoffMillis = 60_000
  /// The longest `Retry-After` honoured; a receiver asking for more is waited on this long, so
  /// a misbehaving receiver cannot park a hook for hours.
  static let maxRetryAfterMillis = 300_000

  enum Decision: Equatable {
    case delivered
    /// Try again after this many milliseconds.
    case retry(afterMillis: Int, why: String)
    /// Stop: the receiver refused the event for good (for example 400 or 404).
    case giveUp(why: String)
  }

  /// Decides after attempt number `attempt` (1-based) with `outcome`, given the hook's policy.
  /// Retries happen on connection problems and timeouts, 408, 429 and 5xx; 2xx is success;
  /// anything else (redirects, other 4xx) is final. Running out of attempts is final too.
  static func decide(
    attempt: Int, maxAttempts: Int, backoffMillis: Int, outcome: Result<HookHTTPResponse, HookHTTPError>,
    nowUnixSeconds: Double = Date().timeIntervalSince1970
  ) -> Decision {
    let why: String
    var retryAfter: Int?
    switch outcome {
    case .success(let response):
      switch response.status {
      case 200..<300:
        return .delivered
      case 408, 429, 500..<600:
        why = "HTTP \(response.status)"
        retryAfter = response.headers["retry-after"].flatMap { parseRetryAfter($0, nowUnixSeconds: nowUnixSeconds) }
      default:
        return .giveUp(why: "HTTP \(response.status) (not retried)")
      }
    case .failure(let error):
      why = error.message
    }
    guard attempt < maxAttempts else {
      return .giveUp(why: "\(why); gave up after \(maxAttempts) attempt\(maxAttempts == 1 ? "" : "s")")
    }
    let delay = retryAfter.map { min($0, maxRetryAfterMillis) } ?? backoff(attempt: attempt, base: backoffMillis)
    return .retry(afterMillis: delay, why: why)
  }

  /// `base * 2^(attempt-1)`, capped at ``maxBackoffMillis`` (the cap also stops overflow).
  static func backoff(attempt: Int, base: Int) -> Int {
    var delay = max(0, base)
    for _ in 1..<max(1, attempt) {
      delay *= 2
      if delay >= maxBackoffMillis { return maxBackoffMillis }
    }
    return min(delay, maxBackoffMillis)
  }

  /// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3), in milliseconds.
  static func parseRetryAfter(_ text: String, nowUnixSeconds: Double) -> Int? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if let seconds = Int(trimmed) {
      guard seconds >= 0 else { return nil }
      return seconds > maxRetryAfterMillis / 1000 ? maxRetryAfterMillis : seconds * 1000
    }
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    guard let date = formatter.date(from: trimmed) else { return nil }
    let millis = (date.timeIntervalSince1970 - nowUnixSeconds) * 1000
    guard millis.isFinite else { return nil }
    return Int(min(max(0, millis), Double(maxRetryAfterMillis)))
  }
}
