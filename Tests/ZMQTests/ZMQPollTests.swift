import Foundation
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

#if os(Linux)
@Suite("PollTimer")
struct PollTimerTests {
    @Test("a PollTimer is readable once its time has come, and not before it is armed or after it is drained")
    func timer() throws {
        let timer = try PollTimer()
        var items = [ZMQPollItem.fd(timer.fd)]
        #expect(try zmqPoll(&items, timeoutMs: 0) == 0, "not armed: not readable")

        // Armed an hour ahead: not readable now.
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nowMicros = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        timer.arm(atMicros: nowMicros + 3_600_000_000)
        #expect(try zmqPoll(&items, timeoutMs: 0) == 0)

        // Re-armed at a time already past: readable (the timeout only bounds a failure).
        timer.arm(atMicros: nowMicros)
        #expect(try zmqPoll(&items, timeoutMs: 10_000) == 1)
        #expect(items[0].isReadable)
        timer.drain()
        #expect(try zmqPoll(&items, timeoutMs: 0) == 0, "drained: not readable until armed again")

        // Time zero is long past too (an all-zero setting would disarm a timerfd instead).
        timer.arm(atMicros: 0)
        #expect(try zmqPoll(&items, timeoutMs: 10_000) == 1)
    }
}
#endif
