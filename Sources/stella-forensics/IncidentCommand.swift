import ArgumentParser
import Capture
import Foundation
import Incidents
import Journal
import Manifest
import Receivers

struct IncidentCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "incident",
    abstract: "Declare, end and list incidents on a running capture service.",
    discussion: """
      Talks to the capture service's admin endpoint. While an incident is active, the data of
      its tenants is kept in full and the flight recorder's segments from its start minus its
      look-back onward are pinned; `bundle --incident ID` seals them.

      Every call carries an admin token (Authorization: Bearer): --token-file FILE, else the
      STELLA_ADMIN_TOKEN environment variable, else DATA/admin-token, the local operator's token
      capture generates in its data directory (--data, default ./stella-data) when it runs without
      --admin-tokens. The incident records the token's name as who declared or stopped it.

      An https:// endpoint is checked against --tls-ca (else the system's roots); an endpoint that
      requires client certificates (capture --tls-client-ca) gets --tls-cert and --tls-key.
      """,
    subcommands: [Start.self, Stop.self, List.self])

  struct AdminOptions: ParsableArguments {
    @Option(
      help:
        "The capture service's admin endpoint: HOST:PORT as capture prints it (https with --tls-ca or --tls-cert), http://HOST:PORT or https://HOST:PORT."
    )
    var admin: String = "http://127.0.0.1:4320"

    @Option(name: .customLong("tls-ca"), help: "PEM CA that signed the admin endpoint's certificate (https).")
    var tlsCA: String?

    @Option(
      name: .customLong("tls-cert"), help: "PEM client certificate for an admin endpoint that requires one (mTLS).")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(name: .customLong("token-file"), help: "A file holding the admin token (first line).")
    var tokenFile: String?

    @Option(help: "Capture's data directory, whose admin-token is used when no other token is given.")
    var data: String = CaptureConfiguration().dataDirectory

    /// A client for the endpoint, with the token found as the help text says.
    func client() throws -> AdminClient {
      let connection: AdminAPIClient
      do {
        connection = try AdminAPIClient(
          endpoint: try AdminEndpoint(parsing: admin, bareUsesTLS: tlsCA != nil || tlsCert != nil),
          tls: AdminClientTLSFiles(caPath: tlsCA, certificatePath: tlsCert, keyPath: tlsKey))
      } catch {
        throw CLIFailure.usage(error.message)
      }
      return AdminClient(connection: connection, token: try token())
    }

    /// --token-file, else `STELLA_ADMIN_TOKEN`, else `DATA/admin-token`.
    func token() throws -> String {
      if let tokenFile { return try Self.readToken(tokenFile, flag: "--token-file") }
      if let token = ProcessInfo.processInfo.environment["STELLA_ADMIN_TOKEN"], !token.isEmpty {
        return token.trimmingCharacters(in: .whitespacesAndNewlines)
      }
      let generated = (data as NSString).appendingPathComponent(AdminTokens.generatedTokenFile)
      guard FileManager.default.fileExists(atPath: generated) else {
        throw CLIFailure.usage(
          "no admin token: pass --token-file FILE, set STELLA_ADMIN_TOKEN, or give --data DIR of the capture on this host (its DIR/admin-token; \(generated) does not exist)"
        )
      }
      return try Self.readToken(generated, flag: "--data")
    }

    private static func readToken(_ path: String, flag: String) throws -> String {
      let text: String
      do {
        text = try String(contentsOfFile: path, encoding: .utf8)
      } catch {
        throw CLIFailure.usage("\(flag): cannot read the admin token in \(path): \(error.localizedDescription)")
      }
      let token = text.split(whereSeparator: \.isNewline).first.map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      guard let token, !token.isEmpty else { throw CLIFailure.usage("\(flag): \(path) holds no admin token") }
      return token
    }
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

    @Option(
      name: .customLong("declared-by"),
      help: "A note of who declares it (default: OS user@host); custody records the token's name.")
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
      let incident = try await connection.client().call("POST", "/incidents", body: .object(body), expecting: 201)
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

    @Option(
      name: .customLong("stopped-by"),
      help: "A note of who ends it (default: OS user@host); custody records the token's name.")
    var stoppedBy: String?

    @Flag(help: "Print the incident as JSON.")
    var json = false

    func run() async throws {
      let path = "/incidents/\(id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id)/stop"
      let incident = try await connection.client().call(
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
      let listing = try await connection.client().call("GET", "/incidents", body: nil, expecting: 200)
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
        // Every field is printed escaped: the service validates what it stores, but the
        // listing may come from an older service or another endpoint, and a terminal must not
        // run escape sequences it holds.
        let e = Output.escaped
        let end =
          incident.endUnixNano.map {
            " until \(RFC3339Time.format($0)) (\(e(incident.endedBy ?? "?"))\(incident.stopNote.map { ", note " + e($0) } ?? ""))"
          } ?? ""
        let tenants = incident.tenants.isEmpty ? "all tenants" : incident.tenants.map(e).joined(separator: ",")
        let note = incident.note.map { " (note \(e($0)))" } ?? ""
        print(
          "\(e(incident.id))  \(incident.state.rawValue)  from \(RFC3339Time.format(incident.startUnixNano))\(end)  lookback \(incident.lookbackNanos / 1_000_000_000)s  \(tenants)  by \(e(incident.declaredBy))\(note): \(e(incident.reason))"
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
    print(Output.escaped(incident.id))
    FileHandle.standardError.write(
      Data(
        "incident \(Output.escaped(incident.id)) \(verb) by \(Output.escaped(incident.declaredBy)) (window from \(RFC3339Time.format(incident.windowStartUnixNano)))\n"
          .utf8))
  }
}

/// A JSON client for the capture service's admin endpoint, authenticated by a bearer token.
struct AdminClient {
  let connection: AdminAPIClient
  let token: String

  func call(_ method: String, _ path: String, body: JSONValue?, expecting status: Int) async throws -> JSONValue {
    var headers = [("Authorization", "Bearer \(token)"), ("Accept", "application/json")]
    var bytes: [UInt8]?
    if let body {
      headers.append(("Content-Type", "application/json"))
      bytes = try CanonicalJSON.serialize(body)
    }
    let response: AdminAPIResponse
    do {
      response = try await connection.send(method: method, path: path, headers: headers, body: bytes)
    } catch {
      throw error.code == .usage ? CLIFailure.usage(error.message) : CLIFailure.runtime(error.message)
    }
    let code = response.status
    let document = try? CanonicalJSON.parse(response.body)
    guard code == status, let document else {
      var message = String(decoding: response.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      if case .object(let members)? = document,
        case .string(let text)? = members.first(where: { $0.key == "error" })?.value
      {
        message = text
      }
      let failure = "\(method) \(path): \(code) \(Output.escaped(message))"
      throw (400..<500).contains(code) ? CLIFailure.usage(failure) : CLIFailure.runtime(failure)
    }
    return document
  }
}
