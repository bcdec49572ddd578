#if os(Linux)
import Foundation
import SLAMTesting
import Testing

@Suite("Thread roles")
struct ThreadRoleTests {
    /// The server's threads by kernel name (`/proc/self/task/*/comm`), with their nice values
    /// (field 19 of `stat`).
    func threads() throws -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for task in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after the ")" that ends the name: state is field 3, nice field 19.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 16, let nice = Int(fields[16]) else { continue }
            out[comm.trimmingCharacters(in: .newlines), default: []].append(nice)
        }
        return out
    }

    @Test("the server's threads carry their names, and the checkpointer and relay run at a lower priority than the writer")
    func namesAndPriorities() throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let found = try threads()
        for name in ["slam-writer", "slam-router", "slam-relay", "slam-checkpoint", "slam-query-0"] {
            #expect(found[name] != nil, "no thread named \(name) among \(found.keys.sorted())")
        }
        // Other tests' servers may run in this process too: compare the lowest values.
        let writer = try #require(found["slam-writer"]?.min())
        #expect(try #require(found["slam-checkpoint"]?.min()) > writer)
        #expect(try #require(found["slam-relay"]?.min()) > writer)
        // The writer's raise is granted to root (CAP_SYS_NICE), as on the CI machine.
        if geteuid() == 0 { #expect(try #require(found["slam-router"]?.min()) > writer) }
    }
}
#endif
