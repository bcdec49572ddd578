#if os(Linux)
import Foundation
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

@Suite("Thread roles")
struct ThreadRoleTests {
    /// This process's threads by kernel name (`/proc/self/task/*/comm`), each with what `read`
    /// finds in the thread's file `file` (threads it finds nothing in are left out).
    func perThread<T>(_ file: String, _ read: (String) -> T?) throws -> [String: [T]] {
        var out: [String: [T]] = [:]
        for task in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                  let text = try? String(contentsOfFile: "/proc/self/task/\(task)/\(file)", encoding: .utf8),
                  let value = read(text) else { continue }
            out[comm.trimmingCharacters(in: .newlines), default: []].append(value)
        }
        return out
    }

    /// The threads' nice values (field 19 of `stat`).
    func threads() throws -> [String: [Int]] {
        try perThread("stat") { stat in
            guard let close = stat.lastIndex(of: ")") else { return nil }
            // Fields after the ")" that ends the name: state is field 3, nice field 19.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 16 ? Int(fields[16]) : nil
        }
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

    /// The CPUs each thread may run on (`Cpus_allowed_list` of `status`, e.g. "0-1" or "1").
    func affinities() throws -> [String: [String]] {
        try perThread("status") { status in
            status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
                .map { $0.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces) }
        }
    }

    @Test("--writer-cpu and --io-cpu pin the writer, and the ROUTER with ZeroMQ's I/O thread, each to its CPU alone",
          .enabled(if: CPUPinning.allowedCPUs.count >= 2))
    func pinned() throws {
        let cpus = CPUPinning.allowedCPUs
        let writerCPU = try #require(cpus.last), ioCPU = try #require(cpus.first)
        let server = try TestServer { $0.writerCPU = writerCPU; $0.ioCPU = ioCPU }
        defer { server.shutdown() }
        let (_, s) = try server.scenario()
        _ = try s.registerUser()
        let found = try affinities()
        // Other tests' servers (not pinned) may run in this process too: one thread of each name
        // must be on its CPU alone, which an unpinned thread never is here (two CPUs or more).
        #expect(found["slam-writer"]?.contains("\(writerCPU)") == true, "\(found["slam-writer"] ?? [])")
        #expect(found["slam-router"]?.contains("\(ioCPU)") == true, "\(found["slam-router"] ?? [])")
        #expect(found["ZMQbg/IO/0"]?.contains("\(ioCPU)") == true, "\(found["ZMQbg/IO/0"] ?? [])")
    }

    @Test("a CPU the process may not run on is refused before the store is opened")
    func refusedCPU() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slam-test-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for pin in [{ (c: inout ServerConfig) in c.writerCPU = 4096 }, { (c: inout ServerConfig) in c.ioCPU = -1 }] {
            var config = ServerConfig.forTests(in: directory)
            pin(&config)
            let error = try #require(throws: ServerConfigError.self) { _ = try Server(config: config) }
            #expect(error.description.contains("may not run on CPU"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: ServerConfig.forTests(in: directory).dbPath))
        // The context refuses too (libzmq would stop the process when its thread failed to pin).
        #expect(throws: ZMQError.self) { _ = try ZMQContext(ioThreadCPUs: [4096]) }
    }
}
#endif
