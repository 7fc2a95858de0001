import EvidenceIO
import Foundation
import Testing

@testable import Manifest

/// A fresh directory under the system's temporary directory, removed afterwards.
private final class Scratch {
  let path = NSTemporaryDirectory() + "evidence-files-tests-" + UUID().uuidString

  init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
  deinit { try? FileManager.default.removeItem(atPath: path) }

  func file(_ name: String) -> String { path + "/" + name }
}

private func mode(_ path: String) throws -> Int {
  var info = stat()
  guard lstat(path, &info) == 0 else { throw CocoaError(.fileNoSuchFile) }
  return Int(info.st_mode & 0o7777)
}

private func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

@Suite struct EvidenceFilesTests {
  @Test func directoriesAre0700AndFiles0600() throws {
    let scratch = try Scratch()
    // The umask is not changed here: it is process-wide, and suites run in parallel. Under the
    // usual 022 a file made with the default 0666 would be 0644 and a directory 0755, so these
    // exact modes can only come from the code.
    let nested = scratch.file("a/b/c")
    try EvidenceFiles.makeDirectories(nested + "/")
    for directory in ["a", "a/b", "a/b/c"] { #expect(try mode(scratch.file(directory)) == 0o700, "\(directory)") }
    try EvidenceFiles.writeAtomically(Array("evidence".utf8), to: nested + "/blob")
    #expect(try mode(nested + "/blob") == 0o600)
    #expect(!FileManager.default.fileExists(atPath: nested + "/blob.partial"))
    let fd = try EvidenceFiles.createNew(nested + "/segment", append: true)
    close(fd)
    #expect(try mode(nested + "/segment") == 0o600)
    // An existing directory is left as the operator made it.
    try FileManager.default.createDirectory(
      atPath: scratch.file("mine"), withIntermediateDirectories: false, attributes: [.posixPermissions: 0o750])
    try EvidenceFiles.makeDirectories(scratch.file("mine"))
    #expect(try mode(scratch.file("mine")) == 0o750)
    #expect(throws: FileSafetyError.self) { try EvidenceFiles.makeDirectories(nested + "/blob") }
  }

  @Test func aSymlinkPlantedAtTheTemporaryPathIsNeverFollowed() throws {
    let scratch = try Scratch()
    let victim = scratch.file("victim")
    try "untouched".write(toFile: victim, atomically: false, encoding: .utf8)
    let output = scratch.file("out.json")
    try FileManager.default.createSymbolicLink(atPath: output + ".partial", withDestinationPath: victim)
    try EvidenceFiles.writeAtomically(Array("new".utf8), to: output)
    #expect(try text(victim) == "untouched")
    #expect(try text(output) == "new")
    // createNew refuses anything at the path, a dangling symlink included.
    try FileManager.default.createSymbolicLink(atPath: scratch.file("dangling"), withDestinationPath: scratch.file("x"))
    do {
      _ = try EvidenceFiles.createNew(scratch.file("dangling"))
      Issue.record("created through a dangling symlink")
    } catch {
      #expect(error.kind == .exists)
    }
    #expect(!FileManager.default.fileExists(atPath: scratch.file("x")))
  }

  @Test func publishingWithoutReplacingRefusesAnythingAtTheName() throws {
    let scratch = try Scratch()
    let output = scratch.file("bundle.tar")
    try "old".write(toFile: output, atomically: false, encoding: .utf8)
    do {
      try EvidenceFiles.writeAtomically(Array("new".utf8), to: output, replacing: false)
      Issue.record("replaced an existing output")
    } catch {
      #expect(error.kind == .exists && error.path == output)
    }
    #expect(try text(output) == "old")
    #expect(!FileManager.default.fileExists(atPath: output + ".partial"))

    // A symlink at the output: refused without replacing; replaced itself (never written
    // through) with replacing.
    let victim = scratch.file("victim")
    try "untouched".write(toFile: victim, atomically: false, encoding: .utf8)
    let linked = scratch.file("linked.tar")
    try FileManager.default.createSymbolicLink(atPath: linked, withDestinationPath: victim)
    #expect(throws: FileSafetyError.self) {
      try EvidenceFiles.writeAtomically(Array("new".utf8), to: linked, replacing: false)
    }
    try EvidenceFiles.writeAtomically(Array("new".utf8), to: linked, replacing: true)
    #expect(try text(victim) == "untouched")
    #expect(try FileManager.default.attributesOfItem(atPath: linked)[.type] as? FileAttributeType == .typeRegular)
    #expect(try text(linked) == "new" && mode(linked) == 0o600)

    // Nothing there: published.
    try EvidenceFiles.writeAtomically(Array("fresh".utf8), to: scratch.file("fresh.tar"), replacing: false)
    #expect(try text(scratch.file("fresh.tar")) == "fresh")
  }

  @Test func aPrivateFileMustBe0600OwnedAndNotASymlink() throws {
    let scratch = try Scratch()
    let key = scratch.file("k")
    try "0123456789abcdef".write(toFile: key, atomically: false, encoding: .utf8)
    chmod(key, 0o644)
    do {
      _ = try EvidenceFiles.readPrivateFile(key, maxBytes: 4096)
      Issue.record("read a 0644 secret")
    } catch {
      #expect(error.kind == .insecure && error.message.contains("mode 0644") && error.message.contains("chmod 600"))
    }
    chmod(key, 0o400)
    #expect(throws: FileSafetyError.self) { _ = try EvidenceFiles.readPrivateFile(key, maxBytes: 4096) }
    chmod(key, 0o600)
    #expect(try EvidenceFiles.readPrivateFile(key, maxBytes: 4096) == Array("0123456789abcdef".utf8))
    #expect(throws: FileSafetyError.self) { _ = try EvidenceFiles.readPrivateFile(key, maxBytes: 8) }
    try FileManager.default.createSymbolicLink(atPath: scratch.file("link"), withDestinationPath: key)
    do {
      _ = try EvidenceFiles.readPrivateFile(scratch.file("link"), maxBytes: 4096)
      Issue.record("read a secret through a symlink")
    } catch {
      #expect(error.kind == .insecure)
    }
  }
}
