package import Yams

// The one reader of YAML configuration documents. Every configuration file (capture, hooks,
// sampling policy) walks its document with the same steps: a mapping of string keys, scalars,
// lists, sizes and durations, unknown keys refused, paths relative to the file. Those steps live
// here once; each file keeps its own error type and wording (the messages are part of the CLI's
// output), chosen by the `fail` function it gives the reader.

/// What is wrong with one value of a configuration document, before a reader words it.
package enum YAMLProblem: Sendable, Equatable {
  /// The document is not YAML; the parser's own description.
  case invalidYAML(String)
  case notMapping
  case nonStringKey
  case notScalar
  case notList
  /// The text given where a duration was expected.
  case notDuration(String)
  /// The text given where a size was expected.
  case notSize(String)
  case unknownKey
}

/// Walks one configuration document, reporting each problem through `fail` with the dotted key
/// it is about (`journal.sync-interval`, `hooks.webhooks[0].url`).
package struct ConfigurationYAML<Failure: Error> {
  /// The file the document came from, as the user named it.
  package let path: String
  private let fail: (_ key: String, _ problem: YAMLProblem) -> Failure

  package init(path: String, fail: @escaping (_ key: String, _ problem: YAMLProblem) -> Failure) {
    self.path = path
    self.fail = fail
  }

  /// The error for `problem` at `key`, worded by this reader's file.
  package func error(_ key: String, _ problem: YAMLProblem) -> Failure { fail(key, problem) }

  /// The document's root node; `nil` for an empty document.
  package func document(_ text: String) throws(Failure) -> Node? {
    do {
      return try Yams.compose(yaml: text)
    } catch {
      throw fail("the document", .invalidYAML("\(error)"))
    }
  }

  /// The entries of a mapping, in document order.
  package func mapping(_ node: Node, _ key: String) throws(Failure) -> [(String, Node)] {
    guard let mapping = node.mapping else { throw fail(key, .notMapping) }
    var result: [(String, Node)] = []
    for (name, value) in mapping {
      guard let text = name.string else { throw fail(key, .nonStringKey) }
      result.append((text, value))
    }
    return result
  }

  /// A section's entries: a mapping, or nothing when every entry is commented out (YAML then
  /// reads the section as null, which is an empty section, not an error).
  package func section(_ node: Node, _ key: String) throws(Failure) -> [(String, Node)] {
    if case .scalar(let scalar) = node, ["", "~", "null"].contains(scalar.string) { return [] }
    return try mapping(node, key)
  }

  package func sequence(_ node: Node, _ key: String) throws(Failure) -> [Node] {
    guard let sequence = node.sequence else { throw fail(key, .notList) }
    return Array(sequence)
  }

  /// A scalar's text, exactly as written (YAML's `null` included, as the text `null`).
  package func string(_ node: Node, _ key: String) throws(Failure) -> String {
    guard let scalar = node.scalar else { throw fail(key, .notScalar) }
    return scalar.string
  }

  package func duration(_ node: Node, _ key: String) throws(Failure) -> ConfiguredDuration {
    let text = try string(node, key)
    guard let value = ConfiguredDuration(parsing: text) else { throw fail(key, .notDuration(text)) }
    return value
  }

  package func size(_ node: Node, _ key: String) throws(Failure) -> ByteCount {
    let text = try string(node, key)
    guard let value = ByteCount(parsing: text) else { throw fail(key, .notSize(text)) }
    return value
  }

  package func unknown(_ key: String) -> Failure { fail(key, .unknownKey) }

  /// A path named in the document, relative to the document's directory unless absolute.
  package func relative(_ file: String) -> String {
    guard !file.hasPrefix("/"), let slash = path.lastIndex(of: "/") else { return file }
    return String(path[...slash]) + file
  }
}

extension ConfigurationYAML where Failure == CaptureConfigurationError {
  /// The capture configuration's wording (`PATH: KEY must be a mapping`, `PATH: KEY: "x" is not
  /// a size (...)`), shared by the `hooks:` section; `example` is the file unknown keys point to.
  package init(path: String, example: String) {
    self.init(path: path) { key, problem in
      switch problem {
      case .invalidYAML(let description): CaptureConfigurationError("\(path): not valid YAML: \(description)")
      case .notMapping: CaptureConfigurationError("\(path): \(key) must be a mapping")
      case .nonStringKey: CaptureConfigurationError("\(path): \(key) has a non-string key")
      case .notScalar: CaptureConfigurationError("\(path): \(key) must be a scalar")
      case .notList: CaptureConfigurationError("\(path): \(key) must be a list")
      case .notDuration(let text):
        CaptureConfigurationError("\(path): \(key): \"\(text)\" is not a duration (\(DurationText.hint))")
      case .notSize(let text):
        CaptureConfigurationError("\(path): \(key): \"\(text)\" is not a size (\(ByteCount.hint))")
      case .unknownKey: CaptureConfigurationError("\(path): unknown key \(key) (see \(example))")
      }
    }
  }
}
