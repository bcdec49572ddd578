import CZMQ  // the C constants (ZMQ_LINGER, EFSM, ...) for the raw option API
import Testing
import ZMQ

@Suite("ZMQ messaging on real sockets")
struct ZMQMessagingTests {
    @Test("REQ -> ROUTER -> REQ: the ROUTER sees [routing id, empty delimiter, body] and replies along it")
    func reqRouterRoundTrip() throws {
        let context = try ZMQContext()
        let router = try makeSocket(context, .router)
        let endpoint = try bindEphemeral(router)
        let req = try makeSocket(context, .req)
        try req.setRoutingId(bytes("client-1"))
        try req.connect(endpoint)

        #expect(try req.send([bytes("hello")]))
        let request = try #require(try router.receive())
        #expect(request == [bytes("client-1"), [], bytes("hello")])

        #expect(try router.send([request[0], [], bytes("world")]))
        #expect(try req.receive() == [bytes("world")])
    }

    /// A message of many frames received keeping only the first: the rest are taken (the next
    /// receive gets the next message) and counted, frames and bytes, but not copied.
    @Test("receive(keepingFrames:) keeps the first frames and counts them all")
    func receiveKeepingFrames() throws {
        let context = try ZMQContext()
        let router = try makeSocket(context, .router)
        let endpoint = try bindEphemeral(router)
        let dealer = try makeSocket(context, .dealer)
        try dealer.setRoutingId(bytes("many"))
        try dealer.connect(endpoint)

        let frames = [bytes("a"), [], bytes("ccc")] + Array(repeating: bytes("xy"), count: 10_000)
        #expect(try dealer.send(frames))
        #expect(try dealer.send([bytes("next")]))
        let received = try #require(try router.receive(keepingFrames: 3))
        #expect(received.frames == [bytes("many"), bytes("a"), []])
        #expect(received.frameCount == 1 + 3 + 10_000)
        #expect(received.byteCount == 4 + 1 + 0 + 3 + 2 * 10_000)
        #expect(try router.receive() == [bytes("many"), bytes("next")])
    }

    /// libzmq leaves IPv6 off: without `ZMQ_IPV6`, `tcp://[::1]:*` failed to bind (`ENODEV`) and
    /// a connection to an IPv6 address was never made. `bind` and `connect` turn it on for such
    /// an endpoint. Skipped on a machine without IPv6 loopback.
    @Test("an IPv6 endpoint binds and connects: REQ -> ROUTER over tcp://[::1]", .enabled(if: ipv6LoopbackWorks()))
    func ipv6RoundTrip() throws {
        let context = try ZMQContext()
        let router = try makeSocket(context, .router)
        try router.bind("tcp://[::1]:*")
        let endpoint = try router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://[::1]:"))
        let req = try makeSocket(context, .req)
        try req.connect(endpoint)
        #expect(try req.send([bytes("over v6")]))
        let request = try #require(try router.receive())
        #expect(request.dropFirst().map(text) == ["", "over v6"])
        #expect(try router.send([request[0], [], bytes("back")]))
        #expect(try req.receive() == [bytes("back")])
    }

    @Test("DEALER pipelines many multipart messages with empty frames, in order, over ipc://")
    func dealerPipelining() throws {
        let ipc = try TemporaryIPC()
        defer { ipc.remove() }
        let context = try ZMQContext()
        let router = try makeSocket(context, .router)
        try router.bind(ipc.endpoint("router"))
        let dealer = try makeSocket(context, .dealer)
        try dealer.connect(try router.lastEndpoint)

        let count = 500  // well under the default high-water marks, so blocking sends never wait
        for n in 0..<count {
            // Empty delimiter, a body, an empty frame in the middle and an empty frame at the end.
            #expect(try dealer.send([[], bytes("\(n)"), [], bytes(String(repeating: "x", count: n)), []]))
        }
        var routingId: [UInt8] = []
        for n in 0..<count {
            let message = try #require(try router.receive())
            #expect(message.count == 6)
            #expect(message.dropFirst().map(text) == ["", "\(n)", "", String(repeating: "x", count: n), ""])
            routingId = message[0]
            #expect(try router.send(message))  // echo, routing id first
        }
        #expect(!routingId.isEmpty)
        for n in 0..<count {
            let reply = try #require(try dealer.receive())
            #expect(reply == [[], bytes("\(n)"), [], bytes(String(repeating: "x", count: n)), []])
        }
        #expect(try dealer.receive(dontWait: true) == nil)
    }

    @Test("A single empty frame and a large frame survive the round trip")
    func emptyAndLargeFrames() throws {
        let context = try ZMQContext()
        let pull = try makeSocket(context, .pull)
        let push = try makeSocket(context, .push)
        try push.connect(try bindEphemeral(pull))
        let large = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try push.send([[]]))
        #expect(try push.send([large, [], large]))
        #expect(try pull.receive() == [[]])
        #expect(try pull.receive() == [large, [], large])
    }

    @Test("PUB/SUB delivers only the subscribed prefix, once the subscription has propagated")
    func pubSubPrefix() throws {
        let context = try ZMQContext()
        let pub = try makeSocket(context, .pub)
        let endpoint = try bindEphemeral(pub)
        let sub = try makeSocket(context, .sub)
        try sub.subscribe("seat.")
        try sub.connect(endpoint)

        // Slow joiner: the subscription reaches the PUB asynchronously, and until it does the PUB
        // drops everything. Publish a probe until one arrives (bounded), polling as we go.
        var joined = false
        var items = [ZMQPollItem.socket(sub)]
        for attempt in 0..<500 where !joined {
            try pub.send([bytes("other.probe"), bytes("\(attempt)")])
            try pub.send([bytes("seat.probe"), bytes("\(attempt)")])
            joined = try zmqPoll(&items, timeoutMs: 10) > 0
        }
        #expect(joined)

        // From now on the PUB filters for this subscriber, and per-publisher order is kept:
        // everything up to "seat.final" arrives, and none of it is "other.".
        try pub.send([bytes("other.final"), bytes("dropped")])
        try pub.send([bytes("seat.final"), bytes("kept")])
        var received: [[[UInt8]]] = []
        while received.last?.first != bytes("seat.final") {
            received.append(try #require(try sub.receive()))
        }
        #expect(received.allSatisfy { text($0[0]).hasPrefix("seat.") })
        #expect(received.last == [bytes("seat.final"), bytes("kept")])
    }

    @Test("ROUTER_MANDATORY: a send to an unknown routing id returns false instead of throwing")
    func routerMandatoryUnknownPeer() throws {
        let context = try ZMQContext()
        let router = try makeSocket(context, .router)
        _ = try bindEphemeral(router)

        // Without the option, libzmq drops the message silently: the send "succeeds".
        #expect(try router.send([bytes("nobody"), [], bytes("x")]))

        try router.setRouterMandatory(true)
        #expect(try router.send([bytes("nobody"), [], bytes("x")]) == false)
        #expect(try router.send([bytes("nobody"), [], bytes("x")], dontWait: true) == false)
        #expect(try router.sendOutcome([bytes("nobody"), [], bytes("x")], dontWait: true) == .unreachable)
    }

    @Test("sendOutcome tells a peer whose pipe is full (wouldBlock) from one that is not there (unreachable)")
    func sendOutcomeFullPipe() throws {
        let context = try ZMQContext()
        let router = try makeSocket(context, .router)
        try router.setRouterMandatory(true)
        try router.setSendHighWaterMark(1)
        let endpoint = try bindEphemeral(router)
        let dealer = try makeSocket(context, .dealer)
        try dealer.setRoutingId(bytes("reader"))
        try dealer.setReceiveHighWaterMark(1)
        try dealer.connect(endpoint)
        // The ROUTER knows the peer once its first message arrives.
        #expect(try dealer.send([[], bytes("hello")]))
        var items = [ZMQPollItem.socket(router)]
        _ = try zmqPoll(&items, timeoutMs: 30_000)
        #expect(try router.receive(dontWait: true)?.first == bytes("reader"))
        // The dealer never reads: its pipe, the sockets' buffers and its own mark fill.
        let big = [UInt8](repeating: 7, count: 64 * 1024)
        var outcome = ZMQSocket.SendOutcome.sent
        var sent = 0
        while outcome == .sent, sent < 100_000 {
            outcome = try router.sendOutcome([bytes("reader"), [], big], dontWait: true)
            if outcome == .sent { sent += 1 }
        }
        #expect(outcome == .wouldBlock && sent >= 1, "after \(sent) sent")
        #expect(try router.sendOutcome([bytes("nobody"), [], big], dontWait: true) == .unreachable)
    }

    @Test("receive(dontWait:) returns nil when nothing is queued; a receive timeout returns nil too")
    func receiveWhenEmpty() throws {
        let context = try ZMQContext()
        let pull = try makeSocket(context, .pull)
        _ = try bindEphemeral(pull)
        #expect(try pull.receive(dontWait: true) == nil)

        try pull.setReceiveTimeout(ms: 1)
        #expect(try pull.receive() == nil)
    }

    @Test("A REQ sending twice without a reply gets EFSM as a thrown ZMQError")
    func reqStateMachineError() throws {
        let context = try ZMQContext()
        let router = try makeSocket(context, .router)
        let req = try makeSocket(context, .req)
        try req.connect(try bindEphemeral(router))
        try req.send([bytes("one")])
        let error = try #require(throws: ZMQError.self) { try req.send([bytes("two")]) }
        #expect(error.errno == EFSM)
    }
}
