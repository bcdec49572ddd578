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
    /// server executed gets its reply before the socket closes, every ok reply's effect is in
    /// the store afterwards, and every other reply is OVERLOADED for a request read after the
    /// stop, which left nothing in the store.
    @Test(arguments: [false, true])
    func everyAcceptedRequestIsAnsweredAndCommitted(waitForFirstReply: Bool) throws {
        try withStoppingServer { ts, c in
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

            // What the server committed.
            let store = try EventStore.open(path: ts.server.config.dbPath, migrations: Projector.migrations)
            let committed = try store.pool.read { db in
                try Row.fetchAll(db, sql: "SELECT user_id, name FROM users").map { ($0[0] as String, $0[1] as String) }
            }
            try store.pool.close()
            let committedNames = Dictionary(uniqueKeysWithValues: committed.map { ($0.0, $0.1) })

            // Every committed command was answered: drain replies until that many are ok
            // (RegisterUser always succeeds, so each executed request is one committed user); the
            // OVERLOADED replies to requests read after the stop come among them.
            func take(_ r: Reply) throws {
                let id = try #require(r.requestId)
                #expect(replies[id] == nil, "two replies to \(id)")
                replies[id] = r
            }
            while replies.values.filter(\.ok).count < committed.count {
                guard let r = try c.receive(timeoutMs: replyTimeoutMs) else { break }
                try take(r)
            }
            // Whatever else is there already (a short look, not a wait for anything).
            while let r = try c.receive(timeoutMs: 0) { try take(r) }
            let ok = replies.filter { $0.value.ok }
            #expect(ok.count == committed.count, "\(committed.count) committed, \(ok.count) answered ok")
            if waitForFirstReply { #expect(committed.count >= 1) }
            for (id, r) in replies {
                let name = try #require(sent[id], "a reply to an unknown request \(id)")
                if r.ok {
                    let userId = try #require(r.body["userId"]?.string)
                    #expect(committedNames[userId] == name, "the ok reply for \(name) has no committed user")
                } else {
                    #expect(r.code == "OVERLOADED" && r.replayed == false, "\(r.bodyText)")
                    #expect(!committedNames.values.contains(name), "\(name) was refused, yet committed")
                }
            }
        }
    }

    /// While the server stops (here held there: a thread of the test holds the store's write
    /// connection, so the writer cannot finish), a command and a query it reads are answered
    /// OVERLOADED at once, saying that it is stopping, and neither is executed: the command's key
    /// is not recorded, and a retry with it after a restart executes. `Subscriber.head` reports
    /// it as `serverBusy`, which `slam subscribe` retries.
    @Test func aRequestReadWhileStoppingIsAnsweredOverloadedAndNotExecuted() throws {
        try withStoppingServer { ts, c in
            let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
            let released = DispatchSemaphore(value: 0)
            Thread {
                ts.server.store.pool.writeWithoutTransaction { _ in
                    holding.signal()
                    release.wait()
                }
                released.signal()
            }.start()
            holding.wait()
            ts.server.stop()
            let command = try c.send("RegisterUser", ["name": "late"], key: "late-key")
            let query = try c.send("GetStats", [:])
            var replies: [String: Reply] = [:]
            while replies.count < 2, let r = try c.receive(timeoutMs: replyTimeoutMs) { replies[r.requestId ?? ""] = r }
            // What `slam subscribe` asks at start, told apart from an error retrying won't fix.
            #expect(throws: SubscriberError.self) {
                do {
                    _ = try Subscriber.head(commandsEndpoint: ts.commandsEndpoint, timeoutMs: replyTimeoutMs)
                } catch let error as SubscriberError {
                    #expect(error.kind == .serverBusy, "\(error)")
                    throw error
                }
            }
            release.signal()
            released.wait()
            ts.shutdown(removeFiles: false)

            let refusedCommand = try #require(replies[command], "no reply to the command read while stopping")
            #expect(refusedCommand.code == "OVERLOADED" && refusedCommand.replayed == false, "\(refusedCommand.bodyText)")
            #expect(refusedCommand.bodyText.contains("stopping"), "\(refusedCommand.bodyText)")
            let refusedQuery = try #require(replies[query], "no reply to the query read while stopping")
            #expect(refusedQuery.code == "OVERLOADED" && refusedQuery.replayed == nil, "\(refusedQuery.bodyText)")

            try withRestartedServer(config: ts.server.config) { again in
                let retry = try again.call("RegisterUser", ["name": "late"], key: "late-key", timeoutMs: replyTimeoutMs)
                #expect(retry.ok && retry.replayed == false, "\(retry.bodyText)")
                #expect(try again.call("GetStats", timeoutMs: replyTimeoutMs).body["users"]?.int64Value == 1)
            }
        }
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

/// A server and a client of it on a ZeroMQ context of the client's own (so it outlives the
/// server's shutdown), connected before `body` runs. `body` shuts the server down itself
/// (`ts.shutdown(removeFiles: false)`), or it is done here; the folder goes after.
private func withStoppingServer(_ body: (TestServer, SLAMClient) throws -> Void) throws {
    let ts = try TestServer()
    defer { try? FileManager.default.removeItem(at: ts.directory) }
    defer { ts.shutdown(removeFiles: false) }  // a second shutdown returns at once
    let context = try ZMQContext()
    defer { context.terminate() }
    let c = try SLAMClient(endpoint: ts.commandsEndpoint, context: context)
    defer { c.close() }
    #expect(try c.call("GetStats", timeoutMs: replyTimeoutMs).ok, "the connection is up")
    try body(ts, c)
}
