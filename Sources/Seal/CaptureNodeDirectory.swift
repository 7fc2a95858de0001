import EvidenceIO
import Foundation
import Journal
import Manifest

#if canImport(Glibc)
  import Glibc
#endif

/// One capture node's data directory in a bundle of several: the directory and the node id its
/// journal numbers records under (the `node-id` file capture writes once).
struct CaptureNodeDirectory {
  /// The journal's data directory as the caller named it (messages repeat the caller's words).
  var dataDirectory: String
  /// The node id; `nil` when the bundle has one directory, which needs no telling apart.
  var nodeID: String?

  /// The nodes of `dataDirectories`, in the caller's order.
  ///
  /// One directory is taken as it is (a bundle of one node never needed its node id). Several
  /// must be distinct nodes: the same directory twice, a directory without a valid node id, or
  /// two directories of one node id are refused, since one node's streams from two directories
  /// would claim the same seqs twice.
  static func identify(_ dataDirectories: [String]) throws(JournalBundleError) -> [CaptureNodeDirectory] {
    guard dataDirectories.count > 1 else {
      return dataDirectories.map { CaptureNodeDirectory(dataDirectory: $0, nodeID: nil) }
    }
    var nodes: [CaptureNodeDirectory] = []
    var directoryByResolvedPath: [String: String] = [:]
    var directoryByNode: [String: String] = [:]
    for directory in dataDirectories {
      let resolved = resolvedPath(directory)
      if let earlier = directoryByResolvedPath[resolved] {
        throw JournalBundleError(
          .nodeIdentity,
          "data directory \(directory) is given twice (as \(earlier) and \(directory)); give each capture node's directory once"
        )
      }
      directoryByResolvedPath[resolved] = directory
      let nodeID = try readNodeID(directory)
      if let earlier = directoryByNode[nodeID] {
        throw JournalBundleError(
          .nodeIdentity,
          "\(earlier) and \(directory) both hold the journal of node \"\(nodeID)\"; one node's seqs cannot come from two directories: bundle the node's own directory once"
        )
      }
      directoryByNode[nodeID] = directory
      nodes.append(CaptureNodeDirectory(dataDirectory: directory, nodeID: nodeID))
    }
    return nodes
  }

  /// Refuses segments another node captured: their streams would be bundled as this
  /// directory's, and could collide with that node's own directory.
  func checkOwnership(of segments: [SealedSegment]) throws(JournalBundleError) {
    guard let nodeID, let foreign = segments.first(where: { $0.entry.node != nodeID }) else { return }
    throw JournalBundleError(
      .nodeIdentity,
      "\(dataDirectory) is the journal of node \"\(nodeID)\", but holds a segment of node \"\(foreign.entry.node)\" (stream \(foreign.entry.stream), seqs \(foreign.entry.firstSeq)...\(foreign.entry.lastSeq))"
    )
  }

  private static func readNodeID(_ directory: String) throws(JournalBundleError) -> String {
    let path = JournalLayout(dataDirectory: directory).nodeIDPath
    let bytes: [UInt8]
    do {
      let source = try FileByteSource(path: path)
      bytes = try source.bytes(at: 0, count: source.count)
    } catch {
      throw JournalBundleError(
        .nodeIdentity,
        "\(directory) names no capture node: cannot read \(path) (\(error)); a bundle of several directories tells their nodes apart by it",
        cause: error)
    }
    let nodeID = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    if let problem = NodeID.problem(with: nodeID) {
      throw JournalBundleError(.nodeIdentity, "\(path): \(problem)")
    }
    return nodeID
  }

  /// The directory with symbolic links and `.`/`..` resolved, so one directory named two ways
  /// is recognized; the name as given when it cannot be resolved (reading it fails later, naming it).
  private static func resolvedPath(_ directory: String) -> String {
    guard let resolved = realpath(directory, nil) else { return directory }
    defer { free(resolved) }
    return String(cString: resolved)
  }
}
