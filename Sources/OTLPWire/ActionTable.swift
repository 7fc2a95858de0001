/// What the full check does with a field whose tag is a single byte (fields 1–15), decided once
/// per message kind and tag byte from the rule table, so the hot loop makes one dispatch per
/// field instead of three (kind, field number, rule).
enum FieldAction: UInt8 {
  /// Anything else (multi-byte tags, invalid tags, packed fields, fields with side effects):
  /// the general path through `readTag` and the rule table.
  case general = 0
  /// A varint: a varint-typed field, or an unknown field sent as a varint.
  case varint
  /// Eight bytes: a fixed64/double field, or an unknown one.
  case fixed64
  /// Four bytes.
  case fixed32
  /// A length-delimited unknown field.
  case skipLengthDelimited
  /// A `bytes` field: unlike an unknown field, swift-protobuf bounds its length below 2 GiB.
  case bytes
  /// A `string` field: UTF-8 checked.
  case string
  /// A sub-message, of the kind in the entry's high byte.
  case message
  /// A §6.3 timestamp (wire type already fixed64) into time slot 0 or 1.
  case time0
  case time1
}

extension MessageKind {
  static let count = Int(MessageKind.tenantAnyValue.rawValue) + 1

  /// Per kind, 128 entries (one per tag byte below 0x80): the action in the low byte, the
  /// sub-message kind in the high byte.
  static let actionTable: [UInt16] = table(refusingUnknownFields: false)

  /// The same for a check that refuses unknown fields: those go the general path, which refuses.
  static let refusingActionTable: [UInt16] = table(refusingUnknownFields: true)

  private static func table(refusingUnknownFields: Bool) -> [UInt16] {
    var table = [UInt16](repeating: 0, count: count * 128)
    for raw in 0..<count {
      guard let kind = MessageKind(rawValue: UInt8(raw)) else { continue }
      for tag in 1..<128 {
        var entry = kind.action(tag: UInt8(tag))
        if refusingUnknownFields, kind.isUnknownAction(entry, tag: UInt8(tag)) {
          entry = UInt16(FieldAction.general.rawValue)
        }
        table[raw * 128 + tag] = entry
      }
    }
    return table
  }

  /// Whether `entry` is the skip of an unknown field (or of a known field with another wire type).
  private func isUnknownAction(_ entry: UInt16, tag: UInt8) -> Bool {
    let field = UInt32(tag >> 3)
    let wire = tag & 7
    switch FieldAction(rawValue: UInt8(truncatingIfNeeded: entry)) ?? .general {
    case .general, .message, .time0, .time1, .string, .bytes:
      return false
    case .varint:
      if case .varint = rule(field) { return wire != 0 }
      return true
    case .fixed64:
      if case .fixed64 = rule(field) { return wire != 1 }
      return true
    case .fixed32:
      if case .fixed32 = rule(field) { return wire != 5 }
      return true
    case .skipLengthDelimited:
      return true
    }
  }

  private func action(tag: UInt8) -> UInt16 {
    let field = UInt32(tag >> 3)
    let wire = tag & 7
    // Field 0, end-group, wire types 6/7 and groups: the general path refuses or skips them.
    guard field != 0, wire <= 5, wire != 3, wire != 4 else { return UInt16(FieldAction.general.rawValue) }
    // The tenant kinds record values as they read; keep them on the general path.
    if self == .tenantResource || self == .tenantKeyValue || self == .tenantAnyValue {
      return UInt16(FieldAction.general.rawValue)
    }
    let unknown: FieldAction
    switch wire {
    case 0: unknown = .varint
    case 1: unknown = .fixed64
    case 2: unknown = .skipLengthDelimited
    default: unknown = .fixed32
    }
    let action: FieldAction
    var sub: MessageKind?
    switch rule(field) {
    case .unknown: action = unknown
    case .varint: action = wire == 0 ? .varint : unknown
    case .fixed64: action = wire == 1 ? .fixed64 : unknown
    case .fixed32: action = wire == 5 ? .fixed32 : unknown
    case .string: action = wire == 2 ? .string : unknown
    case .bytes: action = wire == 2 ? .bytes : unknown
    case .repeatedFixed64, .repeatedDouble, .repeatedVarint: action = .general
    case .message(let kind), .timeWalkedMessage(let kind):
      // A time-walked message with another wire type is an error: the general path says so.
      if wire == 2 {
        action = .message
        sub = kind
      } else if case .message = rule(field) {
        action = unknown
      } else {
        action = .general
      }
    case .timeWalkedFixed64(let slot):
      action = wire == 1 ? (slot == 0 ? .time0 : .time1) : .general
    }
    return UInt16(action.rawValue) | UInt16(sub?.rawValue ?? 0) << 8
  }
}
