import Foundation
import GRDB
import SLAMClient
import SLAMJSON
import SLAMProjections
import SLAMStore
import SLAMTesting
import Testing
import ZMQ

@Suite("Server over real sockets: graceful shutdown")
struct ShutdownTests {
    /// Pipelines 300 commands, stops the server, and drains the client: every request the
    /// server read gets its reply before the socket closes, and every ok reply's effect is in
    /// the store afterwards.
    @Test(arguments: [false, true])
    func everyAcceptedRequestIsAnsweredAndCommitted(waitForFirstReply: Bool) throws {
        let ts = try TestServer()
        var stopped = false
        defer { if !stopped { ts.shutdown() } }
        defer { try? FileManager.default.removeItem(at: ts.directory) }
        // The client has a context of its own, so it outlives the server's shutdown.
        let context = try ZMQContext()
        defer { context.terminate() }
        let c = try SLAMClient(endpoint: ts.commandsEndpoint, context: context)
        defer { c.close() }
        // The connection is up before the burst.
        #expect(try c.call("GetStats", timeoutMs: replyTimeoutMs).ok)

        var sent: [String: String] = [:]
        for i in 0..<300 {
            let name = "leaver \(i)"
            sent[try c.send("RegisterUser", ["name": .string(name)], key: "leave-\(i)-" + UUID().uuidString)] = name
        }
        var replies: [String: Reply] = [:]
        if waitForFirstReply {
            let first = try #require(try c.receive(timeoutMs: replyTimeoutMs), "no reply before the stop")
            replies[first.requestId ?? ""] = first
        }
        ts.server.stop()
        ts.shutdown(removeFiles: false)
        stopped = true

        // What the server committed.
        let store = try EventStore.open(path: ts.server.config.dbPath, migrations: Projector.migrations)
        let committed = try store.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT user_id, name FROM users").map { ($0[0] as String, $0[1] as String) }
        }
        try store.pool.close()
        let committedNames = Dictionary(uniqueKeysWithValues: committed.map { ($0.0, $0.1) })

        // Every committed command was answered: drain exactly that many replies (RegisterUser
        // always succeeds, so each read request is one committed user).
        while replies.count < committed.count {
            guard let r = try c.receive(timeoutMs: replyTimeoutMs) else { break }
            let id = try #require(r.requestId)
            #expect(replies[id] == nil, "two replies to \(id)")
            replies[id] = r
        }
        #expect(replies.count == committed.count, "\(committed.count) committed, \(replies.count) answered")
        if waitForFirstReply { #expect(committed.count >= 1) }
        for (id, r) in replies {
            let name = try #require(sent[id], "a reply to an unknown request \(id)")
            #expect(r.ok, "\(r.bodyText)")
            let userId = try #require(r.body["userId"]?.string)
            #expect(committedNames[userId] == name, "the ok reply for \(name) has no committed user")
        }
        // Nothing beyond that: the socket has nothing more (a short look, not a wait for anything).
        #expect(try c.receive(timeoutMs: 0) == nil)
    }

    @Test("wait() a second time returns (it closed everything the first time)")
    func waitTwice() throws {
        let ts = try TestServer()
        ts.shutdown()
        let returned = DispatchSemaphore(value: 0)
        Thread { ts.server.wait(); returned.signal() }.start()
        #expect(returned.wait(timeout: .now() + .seconds(10)) == .success)
    }
}
