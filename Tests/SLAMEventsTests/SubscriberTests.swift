import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import SLAMStore
import SLAMTesting
import Testing

/// PROTOCOL.md section 7 and DESIGN.md invariant 6, end to end: a `Subscriber` on real sockets
/// ends with exactly the store's events (the outbox table is the ground truth), once each, in
/// order, whether it is live, late, restarted, slow enough to lose messages, or its relay restarts.
@Suite("Subscriber", .serialized)
struct SubscriberTests {
    @Test("live: every event of a scripted session, in order, with contiguous seq and categorySeq")
    func scriptedSessionLive() throws {
        try withServer { server in
            let all = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                      eventsEndpoint: server.eventsEndpoint))
            let reservations = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                               eventsEndpoint: server.eventsEndpoint, category: "reservation"))
            all.start()
            reservations.start()
            // A heartbeat has come through: the subscriptions are live before the session starts.
            #expect(all.wait { $0.stats.heartbeats >= 1 })
            #expect(reservations.wait { $0.stats.heartbeats >= 1 })

            let c = try server.client()
            defer { c.close() }
            try scriptedSession(c, round: 0)
            try scriptedSession(c, round: 1)
            let head = try heads(c).headSeq
            #expect(all.waitForCheckpoint(head))
            #expect(reservations.waitForCheckpoint(head))
            let a = all.stop()
            let r = reservations.stop()
            #expect(a.error == nil && r.error == nil, "\(String(describing: a.error)) \(String(describing: r.error))")

            let truth = try outbox(server.store)
            #expect(truth.count == Int(head))
            try expectExactly(a.events, truth)
            try expectExactly(r.events, try outbox(server.store, category: "reservation"), category: "reservation")
            // Every kind of event of the session came through.
            let types = Set(a.events.compactMap(\.type))
            #expect(types.isSuperset(of: ["UserRegistered", "PointsCharged", "PointsUsed", "PointsRefunded", "ConcertCreated",
                                          "ConcertScheduled", "ScheduleSoldOut", "ScheduleReopened", "SeatsHeld",
                                          "ReservationConfirmed", "HoldReleased", "ReservationCancelled"]), "\(types)")
            // Live, with nothing lost: no catch-up was needed after the (empty) first one.
            #expect(a.stats.deliveredLive == Int64(truth.count))
            #expect(a.storeId == truth.first.flatMap { try? JSONParser.parse($0.header)["storeId"]?.stringValue })
            // ReadEvents serves the same events as the outbox table.
            let read = try readEvents(c)
            #expect(read.compactMap { $0["header"]?["seq"]?.int64Value } == truth.map(\.seq))
            #expect(read.map { $0["body"]! } == (try truth.map { try JSONParser.parse($0.body) }))
        }
    }

    @Test("started late (after the events were committed), it catches up through ReadEvents, then follows live")
    func startedLate() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            for round in 0..<3 { try scriptedSession(c, round: round) }
            try registerMany(c, 1500)  // more than one ReadEvents page
            let before = try heads(c).headSeq
            #expect(before > 1000)

            let all = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                      eventsEndpoint: server.eventsEndpoint))
            let wallet = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                         eventsEndpoint: server.eventsEndpoint, category: "wallet"))
            all.start()
            wallet.start()
            #expect(all.waitForCheckpoint(before))
            #expect(wallet.waitForCheckpoint(before))
            try scriptedSession(c, round: 9)
            let head = try heads(c).headSeq
            #expect(all.waitForCheckpoint(head))
            #expect(wallet.waitForCheckpoint(head))
            let a = all.stop()
            let w = wallet.stop()
            #expect(a.error == nil && w.error == nil)
            try expectExactly(a.events, try outbox(server.store))
            try expectExactly(w.events, try outbox(server.store, category: "wallet"), category: "wallet")
            #expect(a.stats.deliveredFromReads >= before)
            #expect(a.stats.readEventsCalls >= 2)
        }
    }

    @Test("stopped mid-stream and restarted from its checkpoint, it ends with every event once, in order")
    func restartedFromCheckpoint() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            try scriptedSession(c)
            // The first run's consumer fails at seq 100, while the stream goes on: the event it
            // failed on is not checkpointed, so the next run starts with it.
            let first = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                        eventsEndpoint: server.eventsEndpoint), failAt: 100)
            // A category subscriber whose consumer fails at its 10th wallet event.
            let firstWallet = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                              eventsEndpoint: server.eventsEndpoint, category: "wallet"),
                                               failAtCount: 10)
            first.start()
            firstWallet.start()
            for round in 1...4 { try scriptedSession(c, round: round) }
            try registerMany(c, 200)
            // It ends by itself at seq 100 (stopping it earlier, on a loaded machine before it
            // got there, would end it without the failure this test is about).
            #expect(first.wait { $0.finished })
            let f = first.stop()
            #expect(f.error != nil, "the first run ends when its consumer fails")
            #expect(f.checkpoint == 99 && f.lastSeq == 99)
            #expect(firstWallet.wait { $0.finished })
            let fw = firstWallet.stop()
            #expect(fw.error != nil)
            #expect(fw.events.count == 9 && fw.categoryCheckpoint == 9)
            // Its checkpoint is at least its last event's seq (a heartbeat may have moved it to
            // the head), and short of the tenth wallet event, which it failed on.
            let walletSeqs = try outbox(server.store, category: "wallet").map(\.seq)
            #expect(fw.checkpoint >= fw.lastSeq && fw.checkpoint < walletSeqs[9])

            // Restarted from the checkpoints while more events come.
            let second = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                         eventsEndpoint: server.eventsEndpoint,
                                                         afterSeq: f.checkpoint, storeId: f.storeId))
            let secondWallet = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                               eventsEndpoint: server.eventsEndpoint, category: "wallet",
                                                               afterSeq: fw.checkpoint, afterCategorySeq: fw.categoryCheckpoint,
                                                               storeId: fw.storeId))
            second.start()
            secondWallet.start()
            for round in 5...7 { try scriptedSession(c, round: round) }
            let head = try heads(c).headSeq
            #expect(second.waitForCheckpoint(head))
            #expect(secondWallet.waitForCheckpoint(head))
            let s = second.stop()
            let sw = secondWallet.stop()
            #expect(s.error == nil && sw.error == nil)
            #expect(s.events.first?.seq == 100)
            try expectExactly(f.events + s.events, try outbox(server.store))
            try expectExactly(fw.events + sw.events, try outbox(server.store, category: "wallet"), category: "wallet")
        }
    }

    @Test("a heartbeat names all five categories, 0 for one without events, even on an empty store")
    func heartbeatNamesEveryCategory() throws {
        try withServer { server in
            let sub = try server.context.socket(.sub)
            defer { sub.close() }
            try sub.setReceiveTimeout(ms: Int32(waitTimeoutMs))
            try sub.subscribe("$heartbeat")
            try sub.connect(server.eventsEndpoint)
            func nextHeartbeat() throws -> JSON {
                let frames = try #require(try sub.receive(), "no heartbeat")
                #expect(frames.count == 2 && frames[0] == Array("$heartbeat".utf8))
                return try JSONParser.parse(frames[1])
            }
            let empty = try nextHeartbeat()
            #expect(empty["headSeq"] == 0)
            #expect(empty["categories"] == ["concert": 0, "queue": 0, "reservation": 0, "user": 0, "wallet": 0])
            let c = try server.client()
            defer { c.close() }
            try registerMany(c, 2)
            var hb = try nextHeartbeat()
            while hb["headSeq"] != 2 { hb = try nextHeartbeat() }  // the heartbeat may predate the commands
            #expect(hb["categories"] == ["concert": 0, "queue": 0, "reservation": 0, "user": 2, "wallet": 0])
        }
    }

    @Test("GetStats.publishedSeq is the relay's progress as it is, not as the writer last stored it")
    func publishedSeqIsLive() throws {
        // With sweeps an hour apart the writer runs a transaction only for commands, so the
        // stored value stays where the last command's transaction left it (before its own events
        // were published): only the relay's live progress can reach the head.
        try withServer(configure: { $0.sweepInterval = 3_600_000 }) { server in
            let c = try server.client()
            defer { c.close() }
            for round in 0..<3 {
                try registerMany(c, 1, prefix: "live\(round)-")
                let head = try heads(c).headSeq
                let deadline = Date().addingTimeInterval(Double(waitTimeoutMs) / 1000)
                var now = try heads(c)
                while now.publishedSeq < head, Date() < deadline { now = try heads(c) }  // round trips; a safety-net timeout
                #expect(now.publishedSeq == head && now.publishedSeq <= now.headSeq, "round \(round): \(now), head \(head)")
            }
        }
    }

    @Test("a tiny receive high-water mark and a slow reader: messages are dropped, yet every event arrives once, in order")
    func slowReaderDropsAndRecovers() throws {
        // The relay's per-subscriber queue is small too: libzmq applies back-pressure from the SUB
        // socket's queue to the PUB's, which drops only past its own high-water mark.
        try withServer(configure: { $0.publishHighWaterMark = 10 }) { server in
            let sub = SubscriberThread(try Subscriber(commandsEndpoint: server.commandsEndpoint,
                                                      eventsEndpoint: server.eventsEndpoint, receiveHighWaterMark: 1),
                                       slowMicroseconds: 100)
            sub.start()
            #expect(sub.wait { $0.stats.heartbeats >= 1 })
            let c = try server.client()
            defer { c.close() }
            try registerMany(c, 1)
            #expect(sub.waitForCheckpoint(1))
            // The reader stalls on seq 2 while 2,000 more events are published: far more than
            // the socket buffers and both high-water marks hold.
            sub.blockAt(2)
            try registerMany(c, 2000)
            try scriptedSession(c)
            #expect(sub.wait { $0.blockedAt == 2 })
            let head = try heads(c).headSeq
            let deadline = Date().addingTimeInterval(Double(waitTimeoutMs) / 1000)
            while try heads(c).publishedSeq < head, Date() < deadline {}  // round trips; a safety-net timeout
            #expect(try heads(c).publishedSeq == head)
            sub.release()
            #expect(sub.waitForCheckpoint(head))
            let s = sub.stop()
            #expect(s.error == nil)
            try expectExactly(s.events, try outbox(server.store))
            // Messages were lost on the way, and recovered through ReadEvents.
            #expect(s.stats.deliveredLive < head)
            #expect(s.stats.deliveredFromReads > 0)
            #expect(s.stats.gaps + s.stats.heartbeatCatchUps >= 1)
        }
    }

    @Test("the relay restarted (server stopped and started again on the same store) mid-stream")
    func relayRestarted() throws {
        try withServer { server in
            let sub = SubscriberThread(try {
                let s = try Subscriber(commandsEndpoint: server.commandsEndpoint, eventsEndpoint: server.eventsEndpoint)
                s.requestTimeoutMs = 500
                return s
            }())
            let wallet = SubscriberThread(try {
                let s = try Subscriber(commandsEndpoint: server.commandsEndpoint, eventsEndpoint: server.eventsEndpoint,
                                       category: "wallet")
                s.requestTimeoutMs = 500
                return s
            }())
            sub.start()
            wallet.start()
            #expect(sub.wait { $0.stats.heartbeats >= 1 })
            // Mid-stream: the reader is stalled at seq 5 across the restart.
            sub.blockAt(5)
            var c = try server.client()
            try scriptedSession(c, round: 0)
            try registerMany(c, 100)
            #expect(sub.wait { $0.blockedAt == 5 })
            c.close()
            server.stop()
            try server.start()
            c = try server.client()
            defer { c.close() }
            try scriptedSession(c, round: 1)
            sub.release()
            var head = try heads(c).headSeq
            #expect(sub.waitForCheckpoint(head))
            #expect(wallet.waitForCheckpoint(head))

            // Again, with the subscriber idle and caught up when the relay goes away, and events
            // committed before it is back.
            c.close()
            server.stop()
            try server.start()
            c = try server.client()
            try scriptedSession(c, round: 2)
            try registerMany(c, 50)
            head = try heads(c).headSeq
            #expect(sub.waitForCheckpoint(head))
            #expect(wallet.waitForCheckpoint(head))
            let s = sub.stop()
            let w = wallet.stop()
            #expect(s.error == nil && w.error == nil)
            try expectExactly(s.events, try outbox(server.store))
            try expectExactly(w.events, try outbox(server.store, category: "wallet"), category: "wallet")
        }
    }

    @Test("a lost last message is revealed by the heartbeat", arguments: [nil, "wallet"] as [String?])
    func heartbeatRevealsLostLastMessage(category: String?) throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            let user = try Scenario(c).registerUser("hb", charge: 100)
            let subscriber = try Subscriber(commandsEndpoint: server.commandsEndpoint, eventsEndpoint: server.eventsEndpoint,
                                            category: category)
            var dropFrom = Int64.max
            let lock = NSLock()
            // Every live message from `dropFrom` on is lost: the next event is the last one, and
            // nothing follows it but heartbeats.
            subscriber.dropLiveMessageForTesting = { event in lock.withLock { event.seq >= dropFrom } }
            let sub = SubscriberThread(subscriber)
            sub.start()
            var head = try heads(c).headSeq
            #expect(sub.waitForCheckpoint(head))
            #expect(sub.wait { $0.stats.heartbeats >= 1 })
            lock.withLock { dropFrom = head + 1 }
            let before = sub.snapshot.stats
            _ = try Scenario(c).must("ChargePoints", ["userId": .string(user), "amount": 200])
            head = try heads(c).headSeq
            let started = Date()
            // Heartbeats come every second: a few seconds suffice (the timeout is a safety net
            // for a loaded machine).
            #expect(sub.waitForCheckpoint(head, timeoutMs: 10_000))
            let took = Date().timeIntervalSince(started)
            let s = sub.stop()
            #expect(s.error == nil)
            #expect(s.stats.droppedForTesting >= 1, "the last message was dropped")
            #expect(s.stats.heartbeatCatchUps > before.heartbeatCatchUps, "the heartbeat revealed it")
            #expect(s.stats.gaps == before.gaps, "no later message revealed it")
            #expect(took < 10)
            try expectExactly(s.events, try outbox(server.store, category: category), category: category)
        }
    }

    @Test("a silent PUB (a wrong events endpoint: no event, no heartbeat) is said once, and events still come through ReadEvents",
          arguments: [nil, "wallet"] as [String?])
    func silentPubFallsBackToReads(category: String?) throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            try scriptedSession(c)
            // Nothing listens there: the subscriber connects, and never hears a thing.
            let nowhere = "ipc://" + server.directory.appendingPathComponent("nobody.sock").path
            let subscriber = try Subscriber(commandsEndpoint: server.commandsEndpoint, eventsEndpoint: nowhere,
                                            category: category)
            // The injected clock moves a second each time it is read, so the silence (3 s) is
            // found within a few polls, whatever the machine's load.
            let clock = Shared<Int64>(0)
            subscriber.nowMs = { clock.update { $0 += 1000; return $0 } }
            let told = Shared<[Bool]>([])
            subscriber.silence = { began in told.update { $0.append(began) } }
            let sub = SubscriberThread(subscriber)
            sub.start()
            var head = try heads(c).headSeq
            // The first catch-up, as ever...
            #expect(sub.waitForCheckpoint(head))
            // ...and what is committed after it, which only the silence's reads can bring.
            try scriptedSession(c, round: 1)
            head = try heads(c).headSeq
            #expect(sub.waitForCheckpoint(head))
            let s = sub.stop()
            #expect(s.error == nil)
            #expect(s.stats.deliveredLive == 0 && s.stats.heartbeats == 0, "nothing came from the PUB")
            #expect(s.stats.silences == 1, "one silence, said once")
            #expect(s.stats.silentReads >= 1)
            #expect(told.get() == [true])
            try expectExactly(s.events, try outbox(server.store, category: category), category: category)
        }
    }

    @Test("a ReadEvents without an answer is said after noAnswerNoticeMs, while the call still waits")
    func noAnswerIsSaidBeforeTheCallIsAskedAgain() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("no-answer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // No server at either endpoint. The call waits 3 s before it is asked again: a notice
        // while no retry has been counted came from the wait itself (`slam subscribe` used to say
        // "no answer" only at the retry, 5 s or more after its start: here, after 3 s, with a
        // retry counted).
        let subscriber = try Subscriber(commandsEndpoint: "ipc://\(dir.path)/commands",
                                        eventsEndpoint: "ipc://\(dir.path)/events", afterSeq: 0)
        defer { subscriber.close() }
        subscriber.requestTimeoutMs = 3_000
        subscriber.noAnswerNoticeMs = 50
        var told = 0
        subscriber.noAnswer = { told += 1 }
        try subscriber.run(until: { told > 0 }) { _ in Issue.record("no server, no event") }
        #expect(told == 1)
        #expect(subscriber.stats.retries == 0 && subscriber.stats.readEventsCalls == 1)
    }

    @Test("a silence ends with the PUB's next message, said once each way")
    func silenceEndsWithAMessage() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            try scriptedSession(c)
            let subscriber = try Subscriber(commandsEndpoint: server.commandsEndpoint, eventsEndpoint: server.eventsEndpoint)
            // A frozen clock: no silence until the test moves it past `silenceMs`; frozen again
            // there, so that only a message from the PUB can end the silence.
            let clock = Shared<Int64>(1)
            subscriber.nowMs = { clock.get() }
            let told = Shared<[Bool]>([])
            subscriber.silence = { began in told.update { $0.append(began) } }
            let sub = SubscriberThread(subscriber)
            sub.start()
            #expect(sub.wait { $0.stats.heartbeats >= 1 })
            #expect(sub.snapshot.stats.silences == 0)
            clock.set(1_000_000)
            // Found at the next poll that receives nothing (heartbeats are a second apart).
            #expect(sub.wait { $0.stats.silences >= 1 })
            let beats = sub.snapshot.stats.heartbeats
            #expect(sub.wait { $0.stats.heartbeats > beats })
            let s = sub.stop()
            #expect(s.error == nil)
            #expect(s.stats.silences == 1)
            #expect(told.get() == [true, false])
            try expectExactly(s.events, try outbox(server.store))
        }
    }

    @Test("a first catch-up that waited for the server is not a silence of the PUB")
    func waitingForTheServerIsNoSilence() throws {
        try withServer { server in
            do {
                let c = try server.client()
                defer { c.close() }
                try scriptedSession(c)
            }
            server.stop()
            let subscriber = try Subscriber(commandsEndpoint: server.commandsEndpoint, eventsEndpoint: server.eventsEndpoint)
            subscriber.requestTimeoutMs = 100
            // The test's clock: the wait for the server takes a minute of it.
            let clock = Shared<Int64>(0)
            subscriber.nowMs = { clock.get() }
            let told = Shared<[Bool]>([])
            subscriber.silence = { began in told.update { $0.append(began) } }
            let sub = SubscriberThread(subscriber)
            sub.start()
            #expect(sub.wait { $0.stats.retries >= 2 }, "the first ReadEvents is asked again while no server answers")
            clock.set(60_000)
            try server.start()
            #expect(sub.wait { $0.stats.heartbeats >= 1 })
            let s = sub.stop()
            #expect(s.error == nil)
            #expect(s.stats.silences == 0 && told.get().isEmpty, "\(told.get())")
            try expectExactly(s.events, try outbox(server.store))
        }
    }

    @Test("a message lost in the middle is revealed by the next one's seq (or categorySeq) and filled through ReadEvents",
          arguments: [nil, "queue"] as [String?])
    func gapRevealedByNextMessage(category: String?) throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            let subscriber = try Subscriber(commandsEndpoint: server.commandsEndpoint, eventsEndpoint: server.eventsEndpoint,
                                            category: category)
            // JoinQueue commits QueueJoined and QueueTokenActivated in one transaction, published
            // back to back (no heartbeat between): losing the first, the second shows the gap.
            let lock = NSLock()
            var seen: Set<Int64> = []
            subscriber.dropLiveMessageForTesting = { event in
                lock.withLock { event.type == "QueueJoined" && seen.insert(event.seq).inserted }
            }
            let sub = SubscriberThread(subscriber)
            sub.start()
            #expect(sub.wait { $0.stats.heartbeats >= 1 })
            let s = Scenario(c)
            try scriptedSession(c)
            let schedule = try s.openSchedule(now: nowMillis(), seats: 10, extra: ["queue": ["maxActive": 100]])
            let users = try (0..<5).map { try s.registerUser("queued \($0)") }
            // Caught up first, so nothing but the lost message can prompt a catch-up before the
            // next message shows the gap (a catch-up may then cover later joins too).
            #expect(sub.waitForCheckpoint(try heads(c).headSeq))
            // Each join waits until the subscriber has its events, so that every QueueJoined
            // comes live (and is dropped): a join sent while a catch-up is reading could come
            // through ReadEvents instead, on a loaded machine.
            for user in users {
                let token = try s.must("JoinQueue", ["userId": .string(user), "scheduleId": .string(schedule)])
                #expect(token["status"]?.stringValue == "ACTIVE")
                #expect(sub.waitForCheckpoint(try heads(c).headSeq))
            }
            let head = try heads(c).headSeq
            #expect(sub.waitForCheckpoint(head))
            let r = sub.stop()
            #expect(r.error == nil)
            #expect(r.stats.droppedForTesting == 5)
            #expect(r.stats.gaps >= 1)
            try expectExactly(r.events, try outbox(server.store, category: category), category: category)
            #expect(r.events.filter { $0.type == "QueueJoined" }.count == 5)
        }
    }

    @Test("events of another store are an error")
    func differentStore() throws {
        try withServer { a in
            try withServer { b in
                let ca = try a.client()
                defer { ca.close() }
                let cb = try b.client()
                defer { cb.close() }
                try Scenario(ca).registerUser("in a")
                try Scenario(cb).registerUser("in b")
                let storeA = try ca.call("GetStats").body["storeId"]!.stringValue!
                // A subscriber whose checkpoint belongs to store A, pointed at store B.
                let sub = SubscriberThread(try Subscriber(commandsEndpoint: b.commandsEndpoint,
                                                          eventsEndpoint: b.eventsEndpoint, storeId: storeA))
                sub.start()
                #expect(sub.wait { $0.finished })
                let s = sub.stop()
                #expect((s.error as? SubscriberError)?.kind == .differentStore, "\(String(describing: s.error))")
                #expect(s.events.isEmpty)
            }
        }
    }

    /// A checkpoint past the store's head (a store restored from an older copy keeps its
    /// `storeId`): `ReadEvents` returns no events and a `headSeq` below it. Waiting would wait
    /// for ever, and the seqs the store gives next are other events than those the checkpoint
    /// counted, so the subscriber stops with an error (PROTOCOL.md section 7; Schemas/README.md).
    @Test("a checkpoint ahead of the store's head is an error, not a wait", arguments: [nil, "user"] as [String?])
    func checkpointAheadOfHead(category: String?) throws {
        try withServer { a in
            let c = try a.client()
            defer { c.close() }
            try Scenario(c).registerUser("only one")
            let stats = try c.call("GetStats").body
            let head = stats["headSeq"]!.int64Value!
            let sub = SubscriberThread(try Subscriber(commandsEndpoint: a.commandsEndpoint, eventsEndpoint: a.eventsEndpoint,
                                                      category: category, afterSeq: head + 5,
                                                      storeId: stats["storeId"]!.stringValue!))
            sub.start()
            #expect(sub.wait { $0.finished })
            let s = sub.stop()
            let error = s.error as? SubscriberError
            #expect(error?.kind == .protocolViolation, "\(String(describing: s.error))")
            #expect(error?.message.contains("behind this subscriber's checkpoint") == true, "\(String(describing: s.error))")
            #expect(s.events.isEmpty)
        }
    }
}
