import Foundation
import CZMQ  // the C constants (ZMQ_LINGER, EFSM, ...) for the raw option API
import Testing
import ZMQ

@Suite("ZMQ sockets, options, contexts and errors")
struct ZMQSocketLifecycleTests {
    @Test("lastEndpoint of a tcp://127.0.0.1:* bind names the real port")
    func lastEndpointHasPort() throws {
        let context = try ZMQContext()
        let socket = try makeSocket(context, .router)
        #expect(try socket.lastEndpoint == "")
        let endpoint = try bindEphemeral(socket)
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let port = try #require(Int(endpoint.split(separator: ":").last ?? ""))
        #expect((1...65_535).contains(port))
    }

    @Test("Binding an invalid endpoint throws a ZMQError naming the call, the endpoint and the cause",
          arguments: [
              ("tcp://127.0.0.1:notaport", EINVAL),
              ("bogus://127.0.0.1:5555", EPROTONOSUPPORT),
              ("no-transport", EINVAL),
          ])
    func invalidEndpoint(endpoint: String, errno expected: Int32) throws {
        let context = try ZMQContext()
        let socket = try makeSocket(context, .router)
        let error = try #require(throws: ZMQError.self) { try socket.bind(endpoint) }
        #expect(error.errno == expected)
        #expect(!error.message.isEmpty)
        #expect(error.description.contains("zmq_bind"))
        #expect(error.description.contains(endpoint))
        #expect(error.description.contains(error.message))
    }

    @Test("Binding a port already in use throws EADDRINUSE")
    func addressInUse() throws {
        let context = try ZMQContext()
        let first = try makeSocket(context, .pull)
        let endpoint = try bindEphemeral(first)
        let second = try makeSocket(context, .pull)
        let error = try #require(throws: ZMQError.self) { try second.bind(endpoint) }
        #expect(error.errno == EADDRINUSE)
    }

    @Test("Options read back as set")
    func optionsRoundTrip() throws {
        let context = try ZMQContext()
        let socket = try context.socket(.dealer)
        try socket.setLinger(ms: 0)
        try socket.setSendHighWaterMark(123)
        try socket.setReceiveHighWaterMark(456)
        try socket.setReceiveTimeout(ms: 789)
        try socket.setSendTimeout(ms: 987)
        try socket.setImmediate(true)
        try socket.setMaxMessageSize(1 << 20)
        #expect(try socket.getInt32Option(ZMQ_LINGER) == 0)
        #expect(try socket.getInt32Option(ZMQ_SNDHWM) == 123)
        #expect(try socket.getInt32Option(ZMQ_RCVHWM) == 456)
        #expect(try socket.getInt32Option(ZMQ_RCVTIMEO) == 789)
        #expect(try socket.getInt32Option(ZMQ_SNDTIMEO) == 987)
        #expect(try socket.getInt32Option(ZMQ_IMMEDIATE) == 1)
        #expect(try socket.fileDescriptor >= 0)

        let sub = try context.socket(.sub)
        try sub.subscribe("")       // everything: an empty binary option
        try sub.subscribe([0, 1, 2])
        try sub.unsubscribe([0, 1, 2])
        try sub.unsubscribe("")
        sub.close()
        socket.close()
    }

    @Test("close is idempotent, and a closed socket throws ENOTSOCK")
    func closeIsIdempotent() throws {
        let context = try ZMQContext()
        let socket = try makeSocket(context, .pair)
        socket.close()
        socket.close()
        let error = try #require(throws: ZMQError.self) { try socket.bind("tcp://127.0.0.1:*") }
        #expect(error.errno == ENOTSOCK)
        #expect(throws: ZMQError.self) { try socket.receive(dontWait: true) }
        var items = [ZMQPollItem.socket(socket)]
        #expect(throws: ZMQError.self) { try zmqPoll(&items, timeoutMs: 0) }
        context.terminate()
        context.terminate()
    }

    @Test("shutdown wakes a receive blocked on another thread with ETERM; terminate then returns")
    func shutdownUnblocksReceive() throws {
        let context = try ZMQContext()
        let pull = try context.socket(.pull)  // no receive timeout: blocks until shutdown
        try pull.setLinger(ms: 0)
        try pull.bind("tcp://127.0.0.1:*")
        let listening = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        let thread = BackgroundThread {
            listening.signal()
            do {
                _ = try pull.receive()
                outcome.set("received")
            } catch let error as ZMQError {
                outcome.set(error.isContextTerminated ? "ETERM" : error.description)
            } catch {
                outcome.set("\(error)")
            }
            pull.close()
        }
        listening.wait()
        // Whether shutdown lands before or during the receive, the receive throws ETERM.
        context.shutdown()
        #expect(thread.join())
        #expect(outcome.value == "ETERM")
        context.terminate()
        #expect(throws: ZMQError.self) { try context.socket(.pull) }
    }

    @Test("zmqVersion reports the linked libzmq 4.x")
    func version() {
        let version = zmqVersion()
        #expect(version.major == 4)
        #expect(version.minor >= 1)
    }
}

/// A value written by one thread and read by another after a join.
final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: String?
    func set(_ value: String) { lock.lock(); stored = value; lock.unlock() }
    var value: String? { lock.lock(); defer { lock.unlock() }; return stored }
}
