import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// How a command hook run ended.
struct HookCommandOutcome: Sendable, Equatable {
  enum Ending: Sendable, Equatable {
    case exited(Int32)
    case signalled(Int32)
    /// Killed (with its process group) at the timeout.
    case timedOut
    /// Killed because the hooks were shutting down.
    case abandoned
  }

  var ending: Ending
  /// The start of what it wrote to stdout and stderr (together), for logs.
  var output: [UInt8]

  var succeeded: Bool { ending == .exited(0) }
}

/// Why a command could not be started.
struct HookCommandError: Error, Sendable, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// Runs one command hook: `posix_spawnp` in a new process group, the event body on stdin, stdout
/// and stderr captured (the first ``maxOutputBytes``), killed with its whole group at the
/// timeout.
///
/// `posix_spawn` rather than Foundation `Process`: the child must get its own process group (so
/// a timeout kills `sh -c` *and* what it started), default signal dispositions (the service may
/// ignore SIGPIPE, which would otherwise be inherited), and stdin must be written without ever
/// raising SIGPIPE in this process — a socket pair written with `MSG_NOSIGNAL` does that.
enum HookCommandRunner {
  static let maxOutputBytes = 2048
  private static let pollMillis: Int32 = 10

  static func run(
    argv: [String], environment extra: [String: String], stdin body: [UInt8], timeoutMillis: Int,
    shouldAbandon: () -> Bool = { false }
  ) throws(HookCommandError) -> HookCommandOutcome {
    guard let program = argv.first else { throw HookCommandError(message: "empty argv") }
    // stdin and output: socket pairs (see above), close-on-exec in this process;
    // dup2 in the child clears the flag on 0, 1 and 2.
    var stdinPair: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &stdinPair) == 0 else {
      throw HookCommandError(message: "socketpair: \(String(cString: strerror(errno)))")
    }
    var outputPipe: [Int32] = [-1, -1]
    // A socket pair too (glibc's pipe2 is not visible to Swift): close-on-exec is set atomically,
    // so a command spawned by another hook at the same moment cannot inherit it.
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &outputPipe) == 0 else {
      let reason = String(cString: strerror(errno))
      close(stdinPair[0])
      close(stdinPair[1])
      throw HookCommandError(message: "socketpair: \(reason)")
    }
    let writeFD = stdinPair[0]
    let readFD = outputPipe[0]
    defer {
      close(writeFD)
      close(readFD)
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, stdinPair[1], 0)
    posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 2)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
    var emptyMask = sigset_t()
    sigemptyset(&emptyMask)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setsigmask(&attributes, &emptyMask)
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

    var environment: [String] = []
    var index = 0
    while let entry = environ[index] {
      let text = String(cString: entry)
      let name = text.prefix { $0 != "=" }
      if extra[String(name)] == nil { environment.append(text) }
      index += 1
    }
    for (name, value) in extra.sorted(by: { $0.key < $1.key }) { environment.append("\(name)=\(value)") }

    var pid: pid_t = 0
    // NULL-terminated C string arrays, passed as pointers by the implicit array conversion.
    let argvPointers: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let envPointers: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
    defer { for pointer in argvPointers + envPointers { free(pointer) } }
    let spawned = posix_spawnp(&pid, program, &actions, &attributes, argvPointers, envPointers)
    close(stdinPair[1])
    close(outputPipe[1])
    guard spawned == 0 else {
      throw HookCommandError(message: "cannot run \(program): \(String(cString: strerror(spawned)))")
    }

    _ = fcntl(writeFD, F_SETFL, fcntl(writeFD, F_GETFL) | O_NONBLOCK)
    _ = fcntl(readFD, F_SETFL, fcntl(readFD, F_GETFL) | O_NONBLOCK)
    let deadline = HookHTTPClient.monotonicMillis() + UInt64(max(1, timeoutMillis))
    var written = 0
    var stdinOpen = true
    var output: [UInt8] = []
    var outputOpen = true
    if body.isEmpty {
      shutdown(writeFD, Int32(SHUT_WR))
      stdinOpen = false
    }

    func readOutput() {
      var chunk = [UInt8](repeating: 0, count: 4096)
      while outputOpen {
        let count = chunk.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
        if count > 0 {
          if output.count < maxOutputBytes { output += chunk[..<min(count, maxOutputBytes - output.count)] }
        } else if count == 0 {
          outputOpen = false
        } else {
          return
        }
      }
    }

    var status: Int32 = 0
    while true {
      if waitpid(pid, &status, WNOHANG) == pid {
        readOutput()
        let ending: HookCommandOutcome.Ending =
          (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signalled(status & 0x7F)
        return HookCommandOutcome(ending: ending, output: output)
      }
      let abandon = shouldAbandon()
      if abandon || HookHTTPClient.monotonicMillis() >= deadline {
        // The negative pid names the process group the child leads.
        kill(-pid, SIGKILL)
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        readOutput()
        return HookCommandOutcome(ending: abandon ? .abandoned : .timedOut, output: output)
      }
      var fds: [pollfd] = []
      if stdinOpen { fds.append(pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)) }
      if outputOpen { fds.append(pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)) }
      // Exit is noticed by waitpid on the next turn, so the wait is short.
      _ = poll(&fds, nfds_t(fds.count), pollMillis)
      if stdinOpen {
        let sent = body.withUnsafeBytes { raw in
          send(writeFD, raw.baseAddress.map { $0 + written }, body.count - written, Int32(MSG_NOSIGNAL))
        }
        if sent > 0 {
          written += sent
        } else if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
          // The command closed its stdin without reading it all (EPIPE): its choice.
          stdinOpen = false
        }
        if written >= body.count || !stdinOpen {
          shutdown(writeFD, Int32(SHUT_WR))
          stdinOpen = false
        }
      }
      readOutput()
    }
  }
}
