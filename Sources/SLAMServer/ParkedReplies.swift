import ZMQ

/// Replies the ROUTER's socket would not take yet: their client has `replyHighWaterMark`
/// replies untaken and the sockets' buffers are full, because it pipelined more than that before
/// reading. Kept by client (routing id), in order, and offered again (`retry`) until the client
/// reads, so that each request still gets its one reply (PROTOCOL.md section 2).
///
/// Bounded three ways, so that a client that never reads cannot hold the server's memory: in
/// all (`totalBytes`), for one client (`clientBytes`, so that one such client leaves room for
/// others), and in time (`maxAgeMs`: a client that has taken none of its parked replies for that
/// long, its pipe still full, is taken as not reading, and all of them are dropped; one that
/// reads, however slowly, keeps them). The caller counts what is refused or dropped (GetStats
/// `repliesDropped`).
///
/// A client that sets its own routing id (`ZMQ_ROUTING_ID`) and connects again under it at once
/// may be offered replies to its previous connection's requests, as it could be before for
/// requests still executing when it came back: libzmq's ROUTER tells connections apart by
/// routing id alone. A client matches replies by `requestId` and ignores those it did not send.
struct ParkedReplies {
    struct Limits {
        var totalBytes: Int
        var clientBytes: Int
        var maxAgeMs: Int64
    }

    private struct Entry {
        let frames: [[UInt8]]
        let size: Int
    }

    /// One client's replies: `entries[head...]` are still to be sent. `takenAt`: when the client
    /// last took one, or when its first was parked.
    private struct Line {
        var entries: [Entry] = []
        var head = 0
        var bytes = 0
        var takenAt: Int64
        var count: Int { entries.count - head }
    }

    let limits: Limits
    private var lines: [[UInt8]: Line] = [:]
    /// The bytes parked, in all (frames and a share for each frame's keeping).
    private(set) var bytes = 0

    init(limits: Limits) { self.limits = limits }

    var isEmpty: Bool { lines.isEmpty }
    var count: Int { lines.values.reduce(0) { $0 + $1.count } }

    /// True when `client` has replies parked: a new one goes behind them.
    func has(_ client: [UInt8]) -> Bool { !lines.isEmpty && lines[client] != nil }

    /// Parks a reply (frame 0 is its client's routing id) behind that client's others. False
    /// when a bound refuses it: the caller drops it.
    mutating func park(_ frames: [[UInt8]], at now: Int64) -> Bool {
        let client = frames[0]
        let size = Self.size(frames)
        var line = lines.removeValue(forKey: client) ?? Line(takenAt: now)
        defer { if line.count > 0 { lines[client] = line } }
        guard bytes + size <= limits.totalBytes, line.bytes + size <= limits.clientBytes else { return false }
        line.entries.append(Entry(frames: frames, size: size))
        line.bytes += size
        bytes += size
        return true
    }

    /// Offers each client's replies, in order, until `send` says its pipe is full again. Returns
    /// how many were sent, and how many dropped: all of a client's when it is gone (`send` says
    /// `.unreachable`), or when its pipe is full and it has taken none for more than `maxAgeMs`.
    mutating func retry(at now: Int64, send: ([[UInt8]]) -> ZMQSocket.SendOutcome) -> (sent: Int, dropped: Int) {
        var sent = 0, dropped = 0
        for client in Array(lines.keys) {
            // Out of the dictionary while it changes, so that its array is not copied.
            var line = lines.removeValue(forKey: client)!
            var drop = false
            while line.head < line.entries.count {
                let entry = line.entries[line.head]
                let outcome = send(entry.frames)
                if outcome == .wouldBlock {
                    drop = now - line.takenAt > limits.maxAgeMs
                    break
                }
                if outcome == .unreachable { drop = true; break }
                line.takenAt = now
                line.head += 1
                line.bytes -= entry.size
                bytes -= entry.size
                sent += 1
            }
            if drop {
                dropped += line.count
                bytes -= line.bytes
                continue
            }
            guard line.count > 0 else { continue }
            // Sent replies go once they are half the array, so it holds what is parked, give or take.
            if line.head * 2 >= line.entries.count {
                line.entries.removeFirst(line.head)
                line.head = 0
            }
            lines[client] = line
        }
        return (sent, dropped)
    }

    /// Empties it; returns how many replies it held.
    mutating func removeAll() -> Int {
        let n = count
        lines.removeAll()
        bytes = 0
        return n
    }

    /// A reply's bytes, with an estimate of their keeping: 32 for each frame's array header and
    /// 64 for the entry and its place in its line (allocation rounding is not counted).
    static func size(_ frames: [[UInt8]]) -> Int { frames.reduce(64) { $0 + $1.count + 32 } }
}
