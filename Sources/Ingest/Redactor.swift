import Foundation
public import Manifest

/// What one redaction pass did to a request.
public struct RedactionOutcome: Sendable, Equatable {
  /// The request to journal: the input itself, byte for byte, when nothing changed.
  public var request: [UInt8]
  /// Whether ``request`` differs from the input.
  public var changed: Bool
  /// Fields the OTLP version in use does not know, dropped at every depth.
  public var unknownFieldsDropped: Int
  /// Attributes and `kvlist` entries dropped by `allow`, `block` or a masked key's collision.
  public var attributesDropped: Int
  /// Strings, keys and values a mask or a hash rewrote.
  public var valuesRewritten: Int
}

/// Applies a ``RedactionPolicy`` to OTLP export requests, between decoding and the journal, so
/// nothing the policy removes ever reaches disk.
///
/// It works on the protobuf wire form: every field of every message is read once, the bytes no
/// rule touches are copied as runs, and only what a rule changes is re-encoded (with the lengths
/// of the messages around it). Where the policy applies (the README's table lists each field):
/// - every string of the request: attribute keys and values at every depth (arrays, kvlists),
///   every name, description, unit, version, `schema_url`, `trace_state`, status message,
///   severity text, event name, entity reference, and log bodies; `bytes` values as their
///   UTF-8 text; integers (and integral doubles) in attribute values and bodies as their
///   decimal text, so a card number sent as a number is masked too (and stored as a string);
/// - in every attribute list and every kvlist, in this order: `attributes.allow` (when present)
///   drops every key it does not list, `attributes.block` drops the keys it lists, a value under
///   a `hash.keys` key becomes the string `hmac-sha256:<hex>`, and everything else goes through
///   the masks (built-ins first, then `mask` entries in document order), keys included; a masked
///   key equal to another key of its list is dropped, so keys stay unique;
/// - fields the OTLP version in use does not know (and known fields with another wire type,
///   which decoders treat the same way) are dropped and counted, never journaled verbatim.
///
/// Dropped attributes are added to the holder's `dropped_attributes_count` where OTLP has one,
/// so a reader of the evidence can see that attributes were removed.
public struct Redactor: Sendable {
  public let policy: RedactionPolicy

  public init(policy: RedactionPolicy) {
    self.policy = policy
  }

  /// The request with the policy applied; see ``redaction(of:signal:)``.
  public func redact(_ request: [UInt8], signal: Signal) throws(RejectedRequest) -> [UInt8] {
    try redaction(of: request, signal: signal).request
  }

  /// Applies the policy to one request.
  ///
  /// - Parameters:
  ///   - request: a serialized `Export…ServiceRequest` of `signal`, as admission produced it.
  ///   - signal: which request type `request` is.
  /// - Returns: the request to journal and what was done to it. The request is `request`
  ///   itself, byte for byte, when the policy changes nothing in it (so unredacted evidence stays
  ///   exactly what the client sent). It may be longer than `request` (hashes and replacement
  ///   texts can be longer than the values they replace).
  /// - Throws: ``RejectedRequest`` of kind ``RejectedRequest/Kind/malformed`` when `request` is
  ///   not well-formed protobuf, ``RejectedRequest/Kind/internalError`` when libcrypto fails to
  ///   hash.
  public func redaction(of request: [UInt8], signal: Signal) throws(RejectedRequest) -> RedactionOutcome {
    if request.isEmpty {
      return RedactionOutcome(
        request: request, changed: false, unknownFieldsDropped: 0, attributesDropped: 0, valuesRewritten: 0)
    }
    let result = request.withUnsafeBytes { raw -> Result<RedactionOutcome, WireRedactionFault> in
      var pass = WireRedactionPass(policy: policy, input: raw)
      do throws(WireRedactionFault) {
        let rewritten = try pass.message(RedactionMessage(signal), 0..<raw.count, depth: 0)
        return .success(
          RedactionOutcome(
            request: rewritten ?? request, changed: rewritten != nil, unknownFieldsDropped: pass.unknownFieldsDropped,
            attributesDropped: pass.attributesDropped, valuesRewritten: pass.valuesRewritten))
      } catch {
        return .failure(error)
      }
    }
    switch result {
    case .success(let outcome):
      return outcome
    case .failure(let fault) where fault.message.hasPrefix("libcrypto"):
      throw RejectedRequest(.internalError, "redaction: \(fault.message)")
    case .failure(let fault):
      throw RejectedRequest(
        .malformed, "redaction: not a valid \(signal.requestMessageName): \(fault.message) at byte \(fault.offset)")
    }
  }
}
