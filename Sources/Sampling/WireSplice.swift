import Journal
internal import Manifest
internal import OTLPWire

/// A trace id as the client sent it. OTLP ids are 16 bytes and are held as two integers (no
/// allocation per span); any other length, empty included, is held as its bytes, so it still
/// names exactly one trace and never collides with a 16-byte id.
enum TraceID: Hashable {
  case standard(high: UInt64, low: UInt64)
  case other([UInt8])

  init(high: UInt64, low: UInt64) {
    self = .standard(high: high, low: low)
  }

  init(_ bytes: UnsafeRawBufferPointer) {
    guard bytes.count == 16 else {
      self = .other(Array(bytes))
      return
    }
    self = .standard(high: Self.prefix(of: bytes), low: Self.prefix(of: bytes.dropFirst(8)))
  }

  /// What the probabilistic rule compares: the first 8 bytes as a big-endian integer.
  var prefix: UInt64 {
    switch self {
    case .standard(let high, _): return high
    case .other(let bytes): return Self.prefix(of: bytes)
    }
  }

  /// The first 8 bytes, big-endian; a shorter id is padded with zero bytes on the right, so the
  /// prefix of an id does not depend on how it is held.
  static func prefix(of bytes: some Sequence<UInt8>) -> UInt64 {
    var value: UInt64 = 0
    var taken = 0
    for byte in bytes {
      guard taken < 8 else { break }
      value = value << 8 | UInt64(byte)
      taken += 1
    }
    return taken == 0 ? 0 : value << UInt64(8 * (8 - taken))
  }
}

/// Where one item (span or log record) sits in its request: the `resource_*` and `scope_*`
/// fields around it and its own field, each with tag and length, as the wire facts give them.
struct ItemSlice {
  var resource: Range<Int>
  var scope: Range<Int>
  var item: Range<Int>
}

/// Items of one request: the request's bytes, shared rather than copied (`[UInt8]` is
/// copy-on-write and the journal's copy is never mutated), and where the items are in them.
struct SliceGroup {
  var request: [UInt8]
  /// Tells requests apart without comparing their bytes; unique per sampler.
  var serial: UInt64
  var slices: [ItemSlice]
}

/// Assembles one export request of traces or logs from items of one or more requests, each item
/// as the client sent it. Both signals nest alike (request field 1 → container field 2 → item
/// field 2), so one builder serves both.
///
/// Items go under their resource's and scope's shell (``OTLPSplice/appendShell(of:in:to:)``:
/// the container's own fields, as sent); byte-equal shells are merged. Resources come in
/// first-seen order, scopes in first-seen order within their resource, items in the order added,
/// so the output depends on the input and its order alone.
struct SpliceBuilder {
  private struct ItemRef {
    var source: Int
    var range: Range<Int>
  }

  private struct Scope {
    var shell: [UInt8]
    var items: [ItemRef] = []
    var itemBytes = 0
  }

  private struct Resource {
    var shell: [UInt8]
    var scopes: [Scope] = []
    var scopeByShell: [[UInt8]: Int] = [:]
  }

  /// A container field of one request.
  private struct Site: Hashable {
    var serial: UInt64
    var offset: Int
  }

  private var sources: [[UInt8]] = []
  private var sourceBySerial: [UInt64: Int] = [:]
  private var resources: [Resource] = []
  private var resourceByShell: [[UInt8]: Int] = [:]
  // Shells are read once per container of a request, not once per item.
  private var resourceBySite: [Site: Int] = [:]
  private var scopeBySite: [Site: (resource: Int, scope: Int)] = [:]

  /// Bytes of the items added so far (their fields, tags included).
  private(set) var itemBytes = 0
  private(set) var itemCount = 0
  /// The newest arrival time passed to ``add(_:from:serial:received:)``.
  private(set) var newestReceived: UInt64 = 0

  /// Adds one item; `false` (nothing added) when a shell cannot be read, which the wire reader's
  /// walk of the same request already rules out.
  @discardableResult
  mutating func add(_ slice: ItemSlice, from request: [UInt8], serial: UInt64, received: UInt64) -> Bool {
    guard slice.item.lowerBound >= 0, slice.item.upperBound <= request.count,
      let placed = place(slice, in: request, serial: serial)
    else { return false }
    let (resource, scope) = placed
    let source: Int
    if let known = sourceBySerial[serial] {
      source = known
    } else {
      source = sources.count
      sources.append(request)
      sourceBySerial[serial] = source
    }
    resources[resource].scopes[scope].items.append(ItemRef(source: source, range: slice.item))
    resources[resource].scopes[scope].itemBytes += slice.item.count
    itemBytes += slice.item.count
    itemCount += 1
    newestReceived = max(newestReceived, received)
    return true
  }

  /// The resource and scope the item goes under, made on first sight.
  private mutating func place(_ slice: ItemSlice, in request: [UInt8], serial: UInt64) -> (Int, Int)? {
    let scopeSite = Site(serial: serial, offset: slice.scope.lowerBound)
    if let known = scopeBySite[scopeSite] { return known }
    let resourceSite = Site(serial: serial, offset: slice.resource.lowerBound)
    let knownResource = resourceBySite[resourceSite]
    // Both shells are read before anything is made, so a failure leaves no empty container.
    var resourceShell: [UInt8] = []
    if knownResource == nil {
      guard let shell = Self.shell(of: slice.resource, in: request) else { return nil }
      resourceShell = shell
    }
    guard let scopeShell = Self.shell(of: slice.scope, in: request) else { return nil }
    let resource: Int
    if let knownResource {
      resource = knownResource
    } else if let equal = resourceByShell[resourceShell] {
      resource = equal
      resourceBySite[resourceSite] = resource
    } else {
      resource = resources.count
      resources.append(Resource(shell: resourceShell))
      resourceByShell[resourceShell] = resource
      resourceBySite[resourceSite] = resource
    }
    let scope: Int
    if let equal = resources[resource].scopeByShell[scopeShell] {
      scope = equal
    } else {
      scope = resources[resource].scopes.count
      resources[resource].scopes.append(Scope(shell: scopeShell))
      resources[resource].scopeByShell[scopeShell] = scope
    }
    scopeBySite[scopeSite] = (resource, scope)
    return (resource, scope)
  }

  private static func shell(of container: Range<Int>, in request: [UInt8]) -> [UInt8]? {
    request.withUnsafeBytes { raw in
      var shell: [UInt8] = []
      do {
        try OTLPSplice.appendShell(of: container, in: raw, to: &shell)
      } catch {
        return nil
      }
      return shell
    }
  }

  /// The assembled request, or `nil` when no item was added.
  func request(signal: Signal, tenant: String) -> AdmittedRequest? {
    guard itemCount > 0 else { return nil }
    // Lengths first, so the output is written once into storage of its final size.
    var resourceLengths: [Int] = []
    resourceLengths.reserveCapacity(resources.count)
    var total = 0
    for resource in resources {
      var length = resource.shell.count
      for scope in resource.scopes where !scope.items.isEmpty {
        length += Self.fieldSize(scope.shell.count + scope.itemBytes)
      }
      resourceLengths.append(length)
      total += Self.fieldSize(length)
    }
    var output: [UInt8] = []
    output.reserveCapacity(total)
    for (resource, length) in zip(resources, resourceLengths) {
      Self.appendHeader(field: 1, length: length, to: &output)
      output.append(contentsOf: resource.shell)
      for scope in resource.scopes where !scope.items.isEmpty {
        Self.appendHeader(field: 2, length: scope.shell.count + scope.itemBytes, to: &output)
        output.append(contentsOf: scope.shell)
        for item in scope.items { output.append(contentsOf: sources[item.source][item.range]) }
      }
    }
    return AdmittedRequest(signal: signal, tenant: tenant, request: output, receivedUnixNano: newestReceived)
  }

  /// A length-delimited field of a field number below 16 (one tag byte) holding `length` bytes.
  static func fieldSize(_ length: Int) -> Int {
    var size = 2
    var rest = UInt64(length) >> 7
    while rest > 0 {
      size += 1
      rest >>= 7
    }
    return size + length
  }

  static func appendHeader(field: UInt8, length: Int, to output: inout [UInt8]) {
    output.append(field << 3 | 2)
    var rest = UInt64(length)
    while rest >= 0x80 {
      output.append(UInt8(truncatingIfNeeded: rest) | 0x80)
      rest >>= 7
    }
    output.append(UInt8(rest))
  }

  /// The payload of a length-delimited field (tag and length skipped); `nil` when `field` does
  /// not hold one.
  static func payload(of field: Range<Int>, in request: UnsafeRawBufferPointer) -> Range<Int>? {
    guard field.lowerBound >= 0, field.upperBound <= request.count else { return nil }
    var position = field.lowerBound
    // The tag, then the length: two varints.
    for _ in 0..<2 {
      while true {
        guard position < field.upperBound else { return nil }
        let byte = request[position]
        position += 1
        if byte < 0x80 { break }
      }
    }
    return position..<field.upperBound
  }
}
