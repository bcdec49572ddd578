import Foundation
import SLAMClient
import SLAMServer
import SLAMStore
import SLAMTesting
import Testing
import ZMQ

@Suite("Binding the server's endpoints")
struct BindTests {
    /// Whether a server answers a command at `endpoint` (a RegisterUser, over a client of its own).
    static func servesCommands(at endpoint: String) throws -> Bool {
        let context = try ZMQContext()
        defer { context.terminate() }
        let client = try SLAMClient(endpoint: endpoint, context: context)
        defer { client.close() }
        return try Scenario(client).registerUser("probe", charge: 1).hasPrefix("usr_")
    }

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
        // The other endpoint, ipc://, bound before the refusal ("events") or not ("commands"): no socket file left.
        let socketFiles = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(socketFiles.isEmpty, "\(socketFiles)")

        // The same configuration on a free port serves; a second start() is refused.
        if option == "commands" { config.commandsEndpoint = "tcp://127.0.0.1:*" } else { config.eventsEndpoint = "tcp://127.0.0.1:*" }
        let server = try Server(config: config)
        let endpoints = try server.start()
        #expect(endpoints.commands != taken && endpoints.events != taken)
        #expect(endpoints == server.endpoints)
        #expect(throws: ServerConfigError.self) { _ = try server.start() }
        server.stop()
        server.wait()
        #expect(throws: ServerConfigError.self) { _ = try server.start() }
        #expect(FileManager.default.fileExists(atPath: config.dbPath))
    }

    /// A failure after the bind (here, a file that is not a database) removes the ipc:// socket
    /// files the server bound: libzmq leaves them behind when its sockets close.
    @Test("a store refused after the bind: no ipc socket file is left")
    func refusedAfterTheBind() throws {
        let folder = try Self.newFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var config = ServerConfig.forTests(in: folder)
        try Data("not a database, but long enough to be taken for one".utf8).write(to: URL(fileURLWithPath: config.dbPath))
        let error = try #require(throws: (any Error).self) { _ = try Server(config: config) }
        #expect("\(error)".contains("file is not a database"), "\(error)")
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(left == ["slam.sqlite", "slam.sqlite.lock"], "\(left)")
        // A server on a real store there binds those endpoints again, as ever.
        try FileManager.default.removeItem(atPath: config.dbPath)
        config.dbPath = folder.appendingPathComponent("real.sqlite").path
        let server = try Server(config: config)
        _ = try server.start()
        server.stop()
        server.wait()
    }

    /// A server made but never started still closes: `wait()` closes the sockets `init` bound
    /// (or the context's termination would wait for them for ever), and the endpoints are free
    /// again for the next server.
    @Test("a server never started: wait() returns and frees its endpoints", .timeLimit(.minutes(1)))
    func neverStarted() throws {
        let folder = try Self.newFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var config = ServerConfig.forTests(in: folder)
        config.commandsEndpoint = "tcp://127.0.0.1:0"
        let first = try Server(config: config)
        first.wait()
        // The same port again (the one the first was given), and the same ipc:// path: both free.
        config.commandsEndpoint = first.endpoints.commands
        let second = try Server(config: config)
        let endpoints = try second.start()
        #expect(endpoints.commands == first.endpoints.commands)
        #expect(try Self.servesCommands(at: endpoints.commands))
        second.stop()
        second.wait()
    }

    /// The lock is looked at before the bind: a second server on a running one's store is refused
    /// by it, as before the bind came first, whatever its endpoints, and binds nothing (an ipc://
    /// endpoint of the running server's it could not tell was live would otherwise be taken).
    @Test("a second server on a running one's store and port: refused by the store's lock, before any bind")
    func secondServerOnTheSameStoreAndPort() throws {
        let folder = try Self.newFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var config = ServerConfig.forTests(in: folder)
        config.commandsEndpoint = "tcp://127.0.0.1:*"
        let first = try Server(config: config)
        let endpoints = try first.start()
        defer { first.stop(); first.wait() }
        var second = config
        second.commandsEndpoint = endpoints.commands
        second.eventsEndpoint = "ipc://" + folder.appendingPathComponent("events2").path
        let error = try #require(throws: StoreError.self) { _ = try Server(config: second) }
        #expect(error.code == .locked && error.message.contains("is in use") && error.message.contains("slam serve (pid \(getpid()))"),
                "\(error)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("events2").path))
        // A port in use by something else, the store free: the port alone.
        second.dbPath = folder.appendingPathComponent("other.sqlite").path
        let alone = try #require(throws: ServerConfigError.self) { _ = try Server(config: second) }
        #expect("\(alone)" == "--commands \(endpoints.commands): Address already in use", "\(alone)")
        #expect(!FileManager.default.fileExists(atPath: second.dbPath))
        // The first still serves.
        #expect(try Self.servesCommands(at: endpoints.commands))
    }
}
