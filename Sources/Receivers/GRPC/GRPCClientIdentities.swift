import Ingest
internal import Synchronization

/// Client certificate identities of gRPC calls, handed from the in-flight gate (which sits in the
/// call's HTTP/2 stream channel and can reach the connection's TLS handler) to the RPC handler
/// (which sees only gRPC metadata) by a token in the call's metadata.
///
/// gRPC Swift's custom transport gives handlers no way to reach their connection's TLS session
/// (its per-connection context hook is not public), and keying by the peer address string would
/// trust a value that a reused port could alias. The token is only a key into this table: the
/// gate removes the metadata key from what the client sent, so a client cannot claim another
/// connection's identity, and a token the table does not hold names nobody.
final class GRPCClientIdentities: Sendable {
  /// The metadata key carrying the token from the gate to the handler.
  static let metadataKey = "x-stella-client-identity"

  private struct State {
    var nextToken: UInt64 = 1
    var open: [UInt64: ClientIdentity] = [:]
  }

  private let state = Mutex(State())

  /// Records `identity` for one call and returns the token that names it.
  func register(_ identity: ClientIdentity) -> UInt64 {
    state.withLock { state in
      let token = state.nextToken
      state.nextToken &+= 1
      state.open[token] = identity
      return token
    }
  }

  /// Hands the identity named by `token` to the caller and forgets it; `nil` when there is none.
  func take(_ token: UInt64) -> ClientIdentity? {
    state.withLock { $0.open.removeValue(forKey: token) }
  }
}
