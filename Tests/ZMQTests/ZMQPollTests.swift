import Testing
import ZMQ

@Suite("zmqPoll and Wakeup")
struct ZMQPollTests {
    @Test("zmqPoll reports a socket readable only once a message is queued")
    func pollSocket() throws {
        let context = try ZMQContext()
        let pull = try makeSocket(context, .pull)
        let push = try makeSocket(context, .push)
        try push.connect(try bindEphemeral(pull))

        var items = [ZMQPollItem.socket(pull)]
        #expect(try zmqPoll(&items, timeoutMs: 0) == 0)
        #expect(!items[0].isReadable)

        try push.send([bytes("ping")])
        #expect(try zmqPoll(&items, timeoutMs: Int(safetyTimeoutMs)) == 1)
        #expect(items[0].isReadable)
        #expect(try pull.receive(dontWait: true) == [bytes("ping")])

        var writable = [ZMQPollItem.socket(push, readable: false, writable: true)]
        #expect(try zmqPoll(&writable, timeoutMs: 0) == 1)
        #expect(writable[0].isWritable)
        #expect(!writable[0].isReadable)
    }

    @Test("A Wakeup signalled from another thread wakes a zmqPoll blocked on a socket")
    func wakeupFromAnotherThread() throws {
        let context = try ZMQContext()
        let pull = try makeSocket(context, .pull)
        _ = try bindEphemeral(pull)
        let wakeup = try Wakeup()

        var items = [ZMQPollItem.socket(pull), .fd(wakeup.fd)]
        #expect(try zmqPoll(&items, timeoutMs: 0) == 0)

        let thread = BackgroundThread { wakeup.signal() }
        // Blocks until the other thread signals (the timeout only bounds a failure).
        let ready = try zmqPoll(&items, timeoutMs: 10_000)
        #expect(ready == 1)
        #expect(items[1].isReadable)
        #expect(!items[0].isReadable)
        #expect(thread.join())

        // Signals coalesce, and drain consumes them all.
        wakeup.signal()
        wakeup.signal()
        wakeup.drain()
        #expect(try zmqPoll(&items, timeoutMs: 0) == 0)
        #expect(!items[1].isReadable)
    }
}
