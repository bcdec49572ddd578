import Foundation
import SLAMClient
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

@Suite("Binding the server's endpoints")
struct BindTests {
    static func newFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slam-bind-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// libzmq's "Address already in use" alone did not say which of the two endpoints it was.
    /// The bind comes before the store is opened: until 2026-12-07 it came in `start()`, and a
    /// server refused a port in use left a new, empty store (and its lock file) behind it.
    @Test("a TCP port in use: the server names the option and the endpoint, and creates no store",
          arguments: ["commands", "events"])
    func portInUse(option: String) throws {
        let folder = try Self.newFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let context = try ZMQContext()
        defer { context.terminate() }
        let holder = try context.socket(.router)
        defer { holder.close() }
        try holder.bind("tcp://127.0.0.1:*")
        let taken = try holder.lastEndpoint

        var config = ServerConfig.forTests(in: folder)
        config.dbPath = folder.appendingPathComponent("store/slam.sqlite").path
        if option == "commands" { config.commandsEndpoint = taken } else { config.eventsEndpoint = taken }
        do {
            let server = try Server(config: config)
            Issue.record("a server was made on \(taken), a port in use")
            server.wait()
        } catch {
            #expect("\(error)" == "--\(option) \(taken): Address already in use", "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: config.dbPath), "a store was created")
        #expect(!FileManager.default.fileExists(atPath: config.dbPath + ".lock"), "a lock file was created")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("store").path), "its folder was created")

        // The same configuration on a free port serves; a second start() is refused.
        if option == "commands" { config.commandsEndpoint = "tcp://127.0.0.1:*" } else { config.eventsEndpoint = "tcp://127.0.0.1:*" }
        let server = try Server(config: config)
        let endpoints = try server.start()
        #expect(endpoints.commands != taken && endpoints.events != taken)
        #expect(throws: ServerConfigError.self) { _ = try server.start() }
        server.stop()
        server.wait()
        #expect(FileManager.default.fileExists(atPath: config.dbPath))
    }

    /// A server made but never started still closes: `wait()` closes the sockets `init` bound
    /// (or the context's termination would wait for them for ever), and the endpoints are free
    /// again for the next server.
    @Test("a server never started: wait() returns and frees its endpoints")
    func neverStarted() throws {
        let folder = try Self.newFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var config = ServerConfig.forTests(in: folder)
        config.commandsEndpoint = "tcp://127.0.0.1:0"
        let first = try Server(config: config)
        first.wait()
        // ipc: the first server's socket file is gone or refuses, so the second may bind it.
        let second = try Server(config: config)
        let endpoints = try second.start()
        let context = try ZMQContext()
        defer { context.terminate() }
        let client = try SLAMClient(endpoint: endpoints.commands, context: context)
        defer { client.close() }
        #expect(try Scenario(client).registerUser("after", charge: 1).hasPrefix("usr_"))
        second.stop()
        second.wait()
    }

    /// The bind comes before the store's lock, which used to be what refused a second server on
    /// a running one's store and port ("the database … is in use"): the port's error says so now.
    @Test("a second server on a running one's port and store: the port's error names the store's holder")
    func secondServerOnTheSamePortAndStore() throws {
        let folder = try Self.newFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var config = ServerConfig.forTests(in: folder)
        config.commandsEndpoint = "tcp://127.0.0.1:*"
        let first = try Server(config: config)
        let endpoints = try first.start()
        defer { first.stop(); first.wait() }
        config.commandsEndpoint = endpoints.commands
        config.eventsEndpoint = "tcp://127.0.0.1:*"
        let error = try #require(throws: ServerConfigError.self) { _ = try Server(config: config) }
        #expect("\(error)" == "--commands \(endpoints.commands): Address already in use; and the database \(config.dbPath) "
                + "is in use, by slam serve (pid \(getpid())): most likely a server already running on it", "\(error)")
        // A port in use by something else, the store free: the port alone.
        config.dbPath = folder.appendingPathComponent("other.sqlite").path
        let alone = try #require(throws: ServerConfigError.self) { _ = try Server(config: config) }
        #expect("\(alone)" == "--commands \(endpoints.commands): Address already in use", "\(alone)")
    }
}
