import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMTesting
import Testing
import ZMQ

@Suite("Server over real sockets: REQ and pipelined DEALER clients")
struct SocketTests {
    /// A REQ socket adds the delimiter itself: it sends `["SLAM/1", header, body]` and gets the
    /// reply without the delimiter.
    @Test func reqClientRoundTrips() throws {
        try withServer { ts in
            let req = try ts.context.socket(.req)
            defer { req.close() }
            try req.setLinger(ms: 0)
            try req.connect(ts.commandsEndpoint)

            func roundTrip(_ header: String, _ body: String) throws -> Reply {
                #expect(try req.send([Array("SLAM/1".utf8), Array(header.utf8), Array(body.utf8)]))
                var items = [ZMQPollItem.socket(req)]
                _ = try zmqPoll(&items, timeoutMs: replyTimeoutMs)
                let frames = try #require(try req.receive(dontWait: true), "no reply within the timeout")
                #expect(frames.count == 3)
                #expect(frames.first == Array("SLAM/1".utf8))
                // Parse as a DEALER would see it.
                return try SLAMClient.parse([[]] + frames)
            }

            let registered = try roundTrip(header(type: "RegisterUser", requestId: "req-1", key: "req-key-1"), #"{"name":"Req"}"#)
            #expect(registered.requestId == "req-1")
            #expect(registered.ok, "\(registered.bodyText)")
            #expect(registered.replayed == false)
            #expect(registered.position != nil)
            let userId = try #require(registered.body["userId"]?.string)

            let user = try roundTrip(header(type: "GetUser", requestId: "req-2"), #"{"userId":"\#(userId)"}"#)
            #expect(user.requestId == "req-2")
            #expect(user.ok)
            #expect(user.body == ["userId": .string(userId), "name": "Req", "balance": 0])

            // An error round trip too: a REQ client gets its one reply and can go on.
            let unknown = try roundTrip(header(type: "Nope", requestId: "req-3"), "{}")
            #expect(unknown.requestId == "req-3")
            #expect(unknown.code == "UNKNOWN_TYPE")
            let again = try roundTrip(header(type: "GetStats", requestId: "req-4"), "{}")
            #expect(again.ok && again.body["users"] == 1)
        }
    }

    /// A DEALER client sends 200 requests before reading any reply, then matches every reply
    /// to its request by requestId.
    @Test func pipelinedDealerMatchesRepliesByRequestId() throws {
        try withServer { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let anchor = try s.registerUser("anchor", charge: 500)

            var expectedName: [String: String] = [:]
            var queryIds: [String] = []
            var ids: [String] = []
            for i in 0..<200 {
                if i % 4 == 3 {
                    let id = try c.send("GetUser", ["userId": .string(anchor)])
                    queryIds.append(id)
                    ids.append(id)
                } else {
                    let name = "fan-\(i)"
                    let id = try c.send("RegisterUser", ["name": .string(name)], key: "pipe-\(i)-" + UUID().uuidString)
                    expectedName[id] = name
                    ids.append(id)
                }
            }
            #expect(Set(ids).count == 200)
            let replies = try collect(c, ids)
            #expect(replies.count == 200)
            var userIds = Set<String>()
            var positions = Set<Int64>()
            for (id, name) in expectedName {
                let r = try #require(replies[id])
                #expect(r.ok, "\(r.bodyText)")
                #expect(r.body["name"] == .string(name), "reply \(id) carries \(r.bodyText), not \(name)")
                #expect(r.replayed == false)
                if let p = r.position { positions.insert(p) }
                if let u = r.body["userId"]?.string { userIds.insert(u) }
            }
            #expect(userIds.count == 150)
            #expect(positions.count == 150, "each registration appends its own event")
            for id in queryIds {
                let r = try #require(replies[id])
                #expect(r.ok && r.body == ["userId": .string(anchor), "name": "anchor", "balance": 500])
                #expect(r.header["replayed"] == nil)
            }
            #expect(try stats(s).users == 151)
        }
    }

    /// PROTOCOL.md section 2: every request gets exactly one reply, and a DEALER may pipeline. A
    /// client that sent 8,000 commands before reading a reply got 2,000 (the ROUTER's
    /// high-water mark, its own, and what the sockets' buffers held); the rest were dropped and
    /// counted. The ROUTER's thread now keeps them until the client reads.
    @Test func aClientThatPipelinesPastTheHighWaterMarkGetsEveryReplyOnceItReads() throws {
        // It reads only once every command has executed: on a loaded machine that may take longer
        // than the 60 s after which a client that takes nothing is taken as not reading.
        try withServer(configure: { $0.replyParkMaxAgeMs = 600_000 }) { ts in
            let (watcher, s) = try ts.scenario()
            defer { watcher.close() }
            let before = try stats(s)
            let pipelining = try ts.client()
            defer { pipelining.close() }
            let n = 8000
            let ids = try pipelineCommands(n, on: pipelining, watchedThrough: s, since: before)
            let replies = try collect(pipelining, ids)
            #expect(replies.count == n && replies.values.allSatisfy(\.ok))
            let dropped = try watcher.call("GetStats").body["repliesDropped"]?.int64Value
            #expect(dropped == 0)
        }
    }

    /// Sends `n` RegisterUser commands on `client` without reading a reply, then waits (through
    /// another client's GetStats, a safety net, no sleep) until the server has executed them all,
    /// so that every reply exists at the server before `client` reads one. Their request ids.
    private func pipelineCommands(_ n: Int, on client: SLAMClient, watchedThrough s: Scenario, since before: Stats) throws -> [String] {
        var ids: [String] = []
        for i in 0..<n {
            ids.append(try client.send("RegisterUser", ["name": .string("p\(i)")], key: "pipelined-\(i)-" + UUID().uuidString))
        }
        #expect(try eventually(timeoutMs: 120_000) { try stats(s).commands >= before.commands + Int64(n) })
        return ids
    }

    /// A stop while replies are parked for a client that does not read: the server offers them
    /// for a second more, then drops them and closes; it does not wait for the client.
    @Test func aStopWithRepliesParkedForAClientThatDoesNotReadStillCompletes() throws {
        let ts = try TestServer()
        defer { ts.shutdown() }
        let (watcher, s) = try ts.scenario()
        let before = try stats(s)
        let pipelining = try ts.client()
        defer { pipelining.close() }
        let n = 8000
        _ = try pipelineCommands(n, on: pipelining, watchedThrough: s, since: before)
        watcher.close()
        ts.server.stop()
        ts.server.wait()
        // What reached the client before the close: each reply once, fewer than were sent.
        var seen = Set<String>()
        while let reply = try pipelining.receive(timeoutMs: 100) {
            let id = try #require(reply.requestId)
            #expect(seen.insert(id).inserted, "reply \(id) twice")
        }
        #expect(seen.count < n)
    }

    /// A client that sends queries and never takes their replies (here 10,000 seat maps of about
    /// 6 KB each) gets at most `replyHighWaterMark` of them queued in libzmq, beyond what the
    /// sockets' buffers hold, and then what fits in the ROUTER thread's budget for such replies
    /// (`replyParkBudgetBytes`, here 1 MiB): the rest are dropped and counted, not kept in memory
    /// without bound (with the ROUTER's old mark of 100,000 none was), and everyone else is
    /// answered as before.
    @Test func repliesToAClientThatTakesNoneAreDroppedPastTheBudget() throws {
        try withServer(configure: { $0.replyParkBudgetBytes = 1 << 20 }) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let scheduleId = try s.openSchedule(now: SystemClock().now(), seats: 100)
            let flooder = try ts.client()
            defer { flooder.close() }
            for _ in 0..<10_000 { _ = try flooder.send("GetSeatMap", ["scheduleId": .string(scheduleId)]) }
            // The other client's queries wait behind the flood in the query queue: in a debug
            // build on a loaded machine, for longer than the client's usual 10 s.
            func query(_ type: String, _ body: JSONObject = [:]) throws -> JSON {
                let r = try c.call(type, .object(body), timeoutMs: 120_000)
                guard r.ok else { throw ClientError("\(type) failed: \(String(decoding: r.rawBody, as: UTF8.self))") }
                return r.body
            }
            #expect(try eventually(timeoutMs: 120_000) { (try query("GetStats")["repliesDropped"]?.int64Value ?? 0) > 0 },
                    "no reply dropped")
            #expect(try query("GetSeatMap", ["scheduleId": .string(scheduleId)])["available"] == 100)
        }
    }
}
