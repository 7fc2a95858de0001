internal import Synchronization

/// A count of open connections shared by listeners, so that one protocol cannot take every
/// descriptor from the others: OTLP/HTTP and OTLP/gRPC draw on one budget (an attacker holding
/// idle gRPC connections leaves nothing for HTTP only up to the budget, never past it), and the
/// admin listener has its own, so `/healthz` stays reachable under any OTLP flood.
public final class ConnectionBudget: Sendable {
  /// Connections the budget allows open at once.
  public let limit: Int
  private let open = Mutex(0)

  public init(limit: Int) {
    self.limit = max(1, limit)
  }

  /// Takes one connection from the budget; `false` when it is spent and the connection must be
  /// turned away.
  public func acquire() -> Bool {
    open.withLock { count in
      guard count < limit else { return false }
      count += 1
      return true
    }
  }

  /// Returns one connection taken by ``acquire()``.
  public func release() {
    open.withLock { $0 = max(0, $0 - 1) }
  }

  /// Connections open now.
  public var inUse: Int { open.withLock { $0 } }
}
