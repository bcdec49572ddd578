import Foundation
import GRDB
import SLAMClient
import SLAMDomain
import SLAMProjections
import SLAMServer
import SLAMStore
import SLAMTesting
import Testing
import ZMQ

/// A server on an existing store file (ipc endpoints in the file's folder), in this process.
final class LiveServer: @unchecked Sendable {
    let server: Server
    let context: ZMQContext
    let client: SLAMClient
    var scenario: Scenario { Scenario(client) }
    private var stopped = false

    init(path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        var config = ServerConfig()
        config.dbPath = path
        config.commandsEndpoint = "ipc://" + folder + "/commands"
        config.eventsEndpoint = "ipc://" + folder + "/events"
        server = try Server(config: config)
        let endpoints = try server.start()
        context = try ZMQContext()
        client = try SLAMClient(endpoint: endpoints.commands, context: context)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        client.close()
        server.stop()
        server.wait()
        context.terminate()
    }
}

@Suite("The store lock")
struct LockTests {
    @Test("rebuild refuses while a server has the database open, and works once it stopped")
    func rebuildRefusesWhileServing() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let live = try LiveServer(path: copy)
        var stopped = false
        defer { if !stopped { live.stop() } }
        let before = try dumpProjections(copy)
        do {
            _ = try Rebuild.run(path: copy)
            Issue.record("rebuild ran while the server was running")
        } catch let error as StoreError {
            #expect(error.code == .locked)
            #expect(error.message.contains(copy + ".lock"), "\(error.message)")
            #expect(error.message.contains("slam serve (pid \(getpid()))"), "\(error.message)")
            #expect(error.message.contains("a server is running"), "\(error.message)")
        }
        #expect(try dumpProjections(copy) == before)
        #expect(StoreLock.isHeld(database: copy))
        live.stop()
        stopped = true
        #expect(!StoreLock.isHeld(database: copy))
        #expect(try Rebuild.run(path: copy).headPosition > 0)
    }

    @Test("a second server on the same database refuses to start")
    func secondServerRefuses() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let live = try LiveServer(path: copy)
        defer { live.stop() }
        var config = ServerConfig()
        config.dbPath = copy
        config.commandsEndpoint = "ipc://" + copy + ".c2"
        config.eventsEndpoint = "ipc://" + copy + ".e2"
        do {
            _ = try Server(config: config)
            Issue.record("a second server started")
        } catch let error as StoreError {
            #expect(error.code == .locked, "\(error)")
        }
        // The first one still serves.
        #expect(try live.scenario.registerUser("still", charge: 10).hasPrefix("usr_"))
    }

    @Test("a server refuses to start during a rebuild (the rebuild's lock)")
    func serverRefusesDuringRebuild() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let lock = try StoreLock.acquire(database: copy, holder: "slam projections rebuild")
        var config = ServerConfig()
        config.dbPath = copy
        config.commandsEndpoint = "ipc://" + copy + ".c"
        config.eventsEndpoint = "ipc://" + copy + ".e"
        do {
            _ = try Server(config: config)
            Issue.record("the server started during a rebuild")
        } catch let error as StoreError {
            #expect(error.code == .locked && error.message.contains("slam projections rebuild"), "\(error.message)")
        }
        lock.release()
        let live = try LiveServer(path: copy)
        live.stop()
    }

    @Test("the lock goes with its holder: released by wait(), by release(), by deinit")
    func lockLifetime() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-lock-" + UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("sub/x.sqlite").path
        do {
            let lock = try StoreLock.acquire(database: db, holder: "test")
            #expect(StoreLock.isHeld(database: db))
            #expect(throws: StoreError.self) { try StoreLock.acquire(database: db, holder: "other") }
            _ = lock
        }
        #expect(!StoreLock.isHeld(database: db))
        let again = try StoreLock.acquire(database: db, holder: "test")
        again.release()
        again.release()
        #expect(!StoreLock.isHeld(database: db))
        #expect(try StoreLock.acquire(database: ":memory:", holder: "test").path == "")
    }

    /// Two paths to one database, through a symbolic link to the file or to its folder, share
    /// one lock: a second server (or a rebuild) given the other path is refused.
    @Test func aSymbolicLinkLeadsToTheSameLock() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-lock-" + UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: dir) }
        let real = dir.appendingPathComponent("data/a.sqlite").path
        try FileManager.default.createDirectory(atPath: dir.appendingPathComponent("data").path, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: real, contents: Data()))
        let fileLink = dir.appendingPathComponent("b.sqlite").path
        try FileManager.default.createSymbolicLink(atPath: fileLink, withDestinationPath: real)
        let folderLink = dir.appendingPathComponent("alias").path
        try FileManager.default.createSymbolicLink(atPath: folderLink, withDestinationPath: dir.appendingPathComponent("data").path)

        let lock = try StoreLock.acquire(database: real, holder: "test")
        defer { lock.release() }
        for other in [fileLink, folderLink + "/a.sqlite"] {
            #expect(StoreLock.isHeld(database: other), "\(other)")
            #expect(throws: StoreError.self, "\(other)") { try StoreLock.acquire(database: other, holder: "other") }
        }
    }
}
