import Foundation
import Testing

/// Bytes from a hex string written in a test (spaces ignored); a typo fails the test.
func hexBytes(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [UInt8] {
  let digits = Array(text.filter { !$0.isWhitespace }.utf8)
  var out: [UInt8] = []
  var index = 0
  while index + 1 < digits.count {
    guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16)
    else {
      Issue.record("bad hex in test: \(text)", sourceLocation: sourceLocation)
      return []
    }
    out.append(byte)
    index += 2
  }
  if digits.count % 2 != 0 {
    Issue.record("odd hex length in test", sourceLocation: sourceLocation)
  }
  return out
}

func hexString(_ bytes: [UInt8]) -> String {
  bytes.map { String(format: "%02x", $0) }.joined()
}

/// A fresh directory under the system temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
  let path: String

  init() throws {
    path = NSTemporaryDirectory() + "signing-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  func file(_ name: String) -> String { path + "/" + name }

  func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

struct ProcessResult {
  var status: Int32
  var stdout: Data
  var stderr: String
}

/// Runs `openssl` with `arguments` (found on PATH), waiting for it to exit.
func openssl(_ arguments: [String]) throws -> ProcessResult {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = ["openssl"] + arguments
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  process.standardInput = FileHandle.nullDevice
  try process.run()
  // openssl's stderr here is a few lines, far below a pipe's capacity, so reading stdout to the
  // end first cannot deadlock.
  let stdout = out.fileHandleForReading.readDataToEndOfFile()
  let stderr = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return ProcessResult(
    status: process.terminationStatus, stdout: stdout,
    stderr: String(decoding: stderr, as: UTF8.self))
}

/// Runs openssl and fails the test (by throwing) unless it exits 0; returns its stdout.
@discardableResult
func opensslOK(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws
  -> Data
{
  let result = try openssl(arguments)
  try #require(
    result.status == 0,
    "openssl \(arguments.joined(separator: " ")) failed: \(result.stderr)",
    sourceLocation: sourceLocation)
  return result.stdout
}

func writeFile(_ path: String, _ bytes: [UInt8], mode: Int = 0o644) throws {
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
}

func writeFile(_ path: String, _ text: String, mode: Int = 0o644) throws {
  try writeFile(path, Array(text.utf8), mode: mode)
}

func readText(_ path: String) throws -> String {
  try String(contentsOfFile: path, encoding: .utf8)
}

func posixMode(_ path: String) throws -> Int {
  let attributes = try FileManager.default.attributesOfItem(atPath: path)
  return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// PEM text around `der`, base64 wrapped at 64 columns (built with Foundation, independently of
/// the code under test).
func pemText(label: String, der: [UInt8]) -> String {
  let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
  return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
}
