/// The hash chain of one node's audit stream: each record names the SHA-256 of the record
/// before it (``AuditStream/chainHash(ofRequest:)``), and the record with seq 0 names
/// ``AuditStream/genesisSHA256``. So a record withheld from the middle of the stream is detected
/// even when the records after it were renumbered, and consecutive bundles join in order.
public enum AuditChain {
  /// Where a chain breaks: which record, and why.
  public struct Break: Error, Sendable, Equatable, CustomStringConvertible {
    /// The seq of the record whose link is wrong.
    public var seq: UInt64
    public var message: String

    public var description: String { "audit record seq \(seq): \(message)" }
  }

  /// Checks records of one audit stream, consecutive and in seq order (the bundle verifier has
  /// already checked the seqs tile without gaps). The first record links to a record before
  /// the bundle unless its seq is 0, where it must link to the genesis hash.
  ///
  /// - Returns: the first break, or `nil` when every link holds.
  public static func firstBreak(in records: [(seq: UInt64, request: [UInt8])]) -> Break? {
    var previousHash: String?
    var previousSeq: UInt64?
    for (seq, request) in records {
      let record: AuditRecord
      do throws(AuditRecordError) {
        record = try AuditRecord(request: request)
      } catch {
        return Break(seq: seq, message: "not an audit record: \(error.message)")
      }
      if let previousSeq, seq != previousSeq &+ 1 {
        return Break(seq: seq, message: "follows seq \(previousSeq); the chain needs consecutive records")
      }
      if let previousHash {
        guard record.previousSHA256 == previousHash else {
          return Break(
            seq: seq,
            message:
              "names \(record.previousSHA256) as its predecessor, but the record before it (seq \(seq &- 1)) hashes to \(previousHash): a record between them was withheld or changed"
          )
        }
      } else if seq == 0, record.previousSHA256 != AuditStream.genesisSHA256 {
        return Break(
          seq: seq, message: "is the stream's first record but names \(record.previousSHA256), not the genesis hash")
      }
      previousHash = AuditStream.chainHash(ofRequest: request)
      previousSeq = seq
    }
    return nil
  }
}
