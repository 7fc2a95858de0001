import ArgumentParser
import Capture
import Foundation
import Manifest

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

struct IncidentCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "incident",
    abstract: "Declare, end and list incidents on a running capture service.",
    discussion: """
      Talks to the capture service's admin endpoint. While an incident is active, the data of
      its tenants is kept in full and the flight recorder's segments from its start minus its
      look-back onward are pinned; `bundle --incident ID` seals them.
      """,
    subcommands: [Start.self, Stop.self, List.self])

  struct AdminOptions: ParsableArguments {
    @Option(help: "The capture service's admin endpoint.")
    var admin: String = "http://127.0.0.1:4320"
  }

  struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Declare an incident; prints its id.")

    @OptionGroup var connection: AdminOptions

    @Option(help: "Why: recorded in the incident and in every bundle of it.")
    var reason: String

    @Option(help: "Incident id (default INC-<UTC time>-<hex>).")
    var id: String?

    @Option(help: "End the incident by itself after this long (e.g. 30m, 2h).")
    var ttl: String?

    @Option(help: "Keep data from this long before the start (default: the service's, 15m).")
    var lookback: String?

    @Option(help: "A tenant the incident covers (repeat; default every tenant).")
    var tenant: [String] = []

    @Option(name: .customLong("declared-by"), help: "Who declares it (default: OS user@host).")
    var declaredBy: String?

    @Flag(help: "Print the incident as JSON.")
    var json = false

    func run() async throws {
      var body: [(key: String, value: JSONValue)] = [
        ("reason", .string(reason)), ("declaredBy", .string(declaredBy ?? Self.osIdentity())),
      ]
      if let id { body.append(("id", .string(id))) }
      if let ttl { body.append(("ttl", .string(ttl))) }
      if let lookback { body.append(("lookback", .string(lookback))) }
      if !tenant.isEmpty { body.append(("tenants", .array(tenant.map { .string($0) }))) }
      let incident = try await AdminClient(base: connection.admin).call(
        "POST", "/incidents", body: .object(body), expecting: 201)
      try IncidentCommand.show(incident, json: json, verb: "started")
    }

    /// The OS user and host of the CLI: the declaring identity when nobody is named.
    static func osIdentity() -> String {
      let user = ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.userName
      return "\(user)@\(ProcessInfo.processInfo.hostName)"
    }
  }

  struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End an active incident.")

    @OptionGroup var connection: AdminOptions

    @Argument(help: "The incident id.")
    var id: String

    @Option(name: .customLong("stopped-by"), help: "Who ends it (default: OS user@host).")
    var stoppedBy: String?

    @Flag(help: "Print the incident as JSON.")
    var json = false

    func run() async throws {
      let path = "/incidents/\(id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id)/stop"
      let incident = try await AdminClient(base: connection.admin).call(
        "POST", path, body: .object([("stoppedBy", .string(stoppedBy ?? Start.osIdentity()))]), expecting: 200)
      try IncidentCommand.show(incident, json: json, verb: "stopped")
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List incidents, active and ended.")

    @OptionGroup var connection: AdminOptions

    @Flag(help: "Print JSON ({\"incidents\": [...]}).")
    var json = false

    func run() async throws {
      let listing = try await AdminClient(base: connection.admin).call("GET", "/incidents", body: nil, expecting: 200)
      if json {
        try Output.printJSON(listing)
        return
      }
      guard case .object(let members) = listing,
        case .array(let incidents)? = members.first(where: { $0.key == "incidents" })?.value
      else { throw CLIFailure.runtime("the admin endpoint answered an unexpected document") }
      if incidents.isEmpty { print("no incidents") }
      for value in incidents {
        let incident = try Incident(json: value)
        let end = incident.endUnixNano.map { " until \(RFC3339Time.format($0)) (\(incident.endedBy ?? "?"))" } ?? ""
        let tenants = incident.tenants.isEmpty ? "all tenants" : incident.tenants.joined(separator: ",")
        print(
          "\(incident.id)  \(incident.state.rawValue)  from \(RFC3339Time.format(incident.startUnixNano))\(end)  lookback \(incident.lookbackNanos / 1_000_000_000)s  \(tenants)  by \(incident.declaredBy): \(incident.reason)"
        )
      }
    }
  }

  static func show(_ value: JSONValue, json: Bool, verb: String) throws {
    if json {
      try Output.printJSON(value)
      return
    }
    let incident = try Incident(json: value)
    print(incident.id)
    FileHandle.standardError.write(
      Data(
        "incident \(incident.id) \(verb) (window from \(RFC3339Time.format(incident.windowStartUnixNano)))\n".utf8))
  }
}

/// A JSON client for the capture service's admin endpoint.
struct AdminClient {
  let base: String

  func call(_ method: String, _ path: String, body: JSONValue?, expecting status: Int) async throws -> JSONValue {
    guard let url = URL(string: base.hasSuffix("/") ? String(base.dropLast()) + path : base + path),
      url.scheme == "http" || url.scheme == "https"
    else {
      throw CLIFailure.usage("--admin: \"\(base)\" is not an http:// URL")
    }
    var request = URLRequest(url: url, timeoutInterval: 30)
    request.httpMethod = method
    if let body {
      request.setValue("application/json", forHTTPHeaderField: "Content-Type")
      request.httpBody = Data(try CanonicalJSON.serialize(body))
    }
    let data: Data
    let response: URLResponse
    do {
      (data, response) = try await URLSession.shared.data(for: request)
    } catch {
      throw CLIFailure.runtime("cannot reach the capture service at \(base): \(error.localizedDescription)")
    }
    let code = (response as? HTTPURLResponse)?.statusCode ?? 0
    let document = try? CanonicalJSON.parse(Array(data))
    guard code == status, let document else {
      var message = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      if case .object(let members)? = document,
        case .string(let text)? = members.first(where: { $0.key == "error" })?.value
      {
        message = text
      }
      let failure = "\(method) \(path): \(code) \(message)"
      throw (400..<500).contains(code) ? CLIFailure.usage(failure) : CLIFailure.runtime(failure)
    }
    return document
  }
}
