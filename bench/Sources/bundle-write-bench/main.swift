import EvidenceIO
// Writes a bundle archive from files with the product's BundleArchiveWriter, so its cost can be
// compared with `bsdtar` writing the same members (bench/bundle-bench.sh).
//
//   bundle-write-bench OUT DIR NAME...
//
// Each NAME is a member name and DIR/NAME its data, passed as `.fileRange` as the sealer does
// for blobs on disk. The writer's full path is timed: ustar writing (direct I/O where the file
// system allows), fsync and the atomic rename.
import Manifest

#if canImport(Glibc)
  import Glibc
#endif

func fail(_ message: String, code: Int32) -> Never {
  let line = Array("bundle-write-bench: \(message)\n".utf8)
  _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
  exit(code)
}

let arguments = CommandLine.arguments
guard arguments.count >= 4 else { fail("usage: bundle-write-bench OUT DIR NAME...", code: 2) }
let outputPath = arguments[1]
let directory = arguments[2]
var members: [(name: String, data: MemberData)] = []
for name in arguments[3...] {
  let path = directory + "/" + name
  var info = stat()
  guard stat(path, &info) == 0 else {
    fail("\(path): \(String(cString: strerror(errno)))", code: 2)
  }
  members.append((name, .fileRange(path: path, offset: 0, count: Int(info.st_size))))
}
do {
  try BundleArchiveWriter.write(members: members, to: outputPath, replacing: true)
} catch {
  fail("\(error)", code: 3)
}
