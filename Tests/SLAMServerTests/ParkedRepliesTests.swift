import Testing
import ZMQ
@testable import SLAMServer

/// `ParkedReplies` with a fake socket: each client's pipe takes `room[client]` more replies.
@Suite("Replies parked for clients that have not read yet")
struct ParkedRepliesTests {
    static func reply(_ client: String, _ n: Int, body: Int = 10) -> [[UInt8]] {
        [Array(client.utf8), [], Array("SLAM/1".utf8), Array("\(n)".utf8), [UInt8](repeating: 0x20, count: body)]
    }

    static let roomy = ParkedReplies.Limits(totalBytes: 1 << 20, clientBytes: 1 << 20, maxAgeMs: 60_000)

    /// A fake socket: what each client has taken, and how many more each may take.
    final class Pipes {
        var room: [String: Int] = [:]
        var gone: Set<String> = []
        var taken: [String: [Int]] = [:]
        func send(_ frames: [[UInt8]]) -> ZMQSocket.SendOutcome {
            let client = String(decoding: frames[0], as: UTF8.self)
            if gone.contains(client) { return .unreachable }
            guard room[client, default: 0] > 0 else { return .wouldBlock }
            room[client]! -= 1
            taken[client, default: []].append(Int(String(decoding: frames[3], as: UTF8.self))!)
            return .sent
        }
    }

    @Test("each client's replies go in order, as its pipe makes room; one client's full pipe does not hold up another's")
    func inOrderPerClient() {
        var parked = ParkedReplies(limits: Self.roomy)
        for n in 0..<10 {
            do { let parkedIt = parked.park(Self.reply("a", n), at: 0); #expect(parkedIt) }
            do { let parkedIt = parked.park(Self.reply("b", n), at: 0); #expect(parkedIt) }
        }
        #expect(parked.count == 20 && parked.has(Array("a".utf8)) && !parked.has(Array("c".utf8)))
        let pipes = Pipes()
        pipes.room = ["a": 3, "b": 10]
        let first = parked.retry(at: 1, send: pipes.send)
        #expect(first == (13, 0))
        #expect(pipes.taken["a"] == [0, 1, 2] && pipes.taken["b"] == Array(0..<10))
        #expect(!parked.has(Array("b".utf8)) && parked.count == 7)
        // Parked behind the others, a new one goes after them.
        do { let parkedIt = parked.park(Self.reply("a", 10), at: 2); #expect(parkedIt) }
        for step in 0..<8 {
            pipes.room["a"] = 1
            let one = parked.retry(at: Int64(3 + step), send: pipes.send)
            #expect(one == (1, 0))
        }
        #expect(pipes.taken["a"] == Array(0...10) && parked.isEmpty && parked.bytes == 0)
    }

    @Test("bounds: in all, per client; a refused reply is not parked")
    func bounds() {
        let size = ParkedReplies.size(Self.reply("a", 0))
        var parked = ParkedReplies(limits: .init(totalBytes: 5 * size, clientBytes: 3 * size, maxAgeMs: 60_000))
        var a: [Bool] = [], b: [Bool] = []
        for n in 0..<4 { a.append(parked.park(Self.reply("a", n), at: 0)) }
        for n in 0..<3 { b.append(parked.park(Self.reply("b", n), at: 0)) }
        #expect(a == [true, true, true, false] && b == [true, true, false])
        #expect(parked.count == 5 && parked.bytes == 5 * size)
        // A client refused with nothing parked leaves no line behind.
        let refused = parked.park(Self.reply("c", 0), at: 0)
        #expect(!refused && !parked.has(Array("c".utf8)))
        let pipes = Pipes()
        pipes.room = ["a": 3]
        let three = parked.retry(at: 1, send: pipes.send)
        #expect(three == (3, 0) && parked.bytes == 2 * size)
        let roomAgain = parked.park(Self.reply("c", 0), at: 1)
        #expect(roomAgain)
    }

    @Test("a client that reads keeps its parked replies however long they wait; its bytes go down as it takes them")
    func aReadingClientKeepsThem() {
        let size = ParkedReplies.size(Self.reply("a", 0))
        var parked = ParkedReplies(limits: .init(totalBytes: 1 << 20, clientBytes: 4 * size, maxAgeMs: 1000))
        for n in 0..<4 { do { let parkedIt = parked.park(Self.reply("a", n), at: 0); #expect(parkedIt) } }
        let pipes = Pipes()
        for (step, at) in [900, 1800, 2700].enumerated() {
            pipes.room["a"] = 1
            let one = parked.retry(at: Int64(at), send: pipes.send)
            #expect(one == (1, 0), "step \(step)")
        }
        // Taken at 2,700: at 3,600 nothing taken for 900 ms, kept; the client's room is one
        // reply's again, so one more fits in its 4, and no more.
        let kept = parked.retry(at: 3600, send: pipes.send)
        #expect(kept == (0, 0) && parked.count == 1 && parked.bytes == size)
        var more: [Bool] = []
        for n in 4..<8 { more.append(parked.park(Self.reply("a", n), at: 3600)) }
        #expect(more == [true, true, true, false])
        // Nothing taken since 2,700: past 1,000 ms it has stopped reading, and all go.
        let gone = parked.retry(at: 3701, send: pipes.send)
        #expect(gone == (0, 4) && parked.isEmpty && parked.bytes == 0)
        #expect(pipes.taken["a"] == [0, 1, 2])
    }

    @Test("a client gone, or one that has not read for maxAgeMs, loses all its parked replies")
    func dropped() {
        var parked = ParkedReplies(limits: .init(totalBytes: 1 << 20, clientBytes: 1 << 20, maxAgeMs: 1000))
        for n in 0..<4 { do { let parkedIt = parked.park(Self.reply("gone", n), at: 0); #expect(parkedIt) } }
        for n in 0..<3 { do { let parkedIt = parked.park(Self.reply("slow", n), at: 0); #expect(parkedIt) } }
        for n in 0..<2 { do { let parkedIt = parked.park(Self.reply("late", n), at: 900); #expect(parkedIt) } }
        let pipes = Pipes()
        pipes.gone = ["gone"]
        let gone = parked.retry(at: 1000, send: pipes.send)
        #expect(gone == (0, 4))
        #expect(parked.count == 5)
        // At 1001 ms "slow"'s oldest has waited more than 1000 ms: all three go; "late"'s stay.
        let old = parked.retry(at: 1001, send: pipes.send)
        #expect(old == (0, 3))
        #expect(parked.count == 2 && parked.has(Array("late".utf8)) && pipes.taken.isEmpty)
        #expect(parked.bytes == 2 * ParkedReplies.size(Self.reply("late", 0)))
        let left = parked.removeAll()
        #expect(left == 2 && parked.isEmpty && parked.bytes == 0)
    }
}
