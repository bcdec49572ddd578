import Foundation
import GRDB
import SLAMStore
import GRDBSQLite
import SLAMDomain

/// Reads the log in position order with several decoding threads. The positions
/// `(after, through]` are cut into chunks; decoder `d` of `n` reads and decodes chunks
/// `d, d + n, d + 2n, ...` on its own read-only connection, and the caller consumes chunk
/// `k` from decoder `k % n`, so events arrive in order while the JSON decoding, the dearest part,
/// runs in parallel. Events are immutable once committed, so connections reading different
/// chunks at different moments see the same events.
final class EventReader {
    let path: String
    let after: Int64
    let through: Int64
    let types: [String]?
    let decoders: Int
    let chunkSize: Int64

    init(path: String, after: Int64 = 0, through: Int64, types: [String]? = nil, decoders: Int, chunkSize: Int64 = 8192) {
        self.path = path
        self.after = after
        self.through = through
        self.types = types
        self.decoders = max(1, decoders)
        self.chunkSize = chunkSize
    }

    /// Calls `consume` with each chunk's events in order, and `done(positionsRead)` after each.
    func run(_ consume: (EventChunk) throws -> Void, done: ((Int64) -> Void)? = nil) throws {
        guard through > after else { return }
        let chunks = Int((through - after + chunkSize - 1) / chunkSize)
        let channels = (0..<decoders).map { _ in Channel(capacity: 4) }
        let cancelled = Flag()
        let group = DispatchGroup()
        for d in 0..<decoders {
            group.enter()
            let thread = Thread { [self] in
                defer { group.leave() }
                decode(decoder: d, chunks: chunks, into: channels[d], cancelled: cancelled)
            }
            thread.name = "slam-rebuild-decoder-\(d)"
            thread.stackSize = 4 << 20
            thread.start()
        }
        let consumerCPU = Trace.threadCPU()
        var waited = 0.0
        defer { Trace.note("[fold] consumer thread: \(String(format: "%.3f", Trace.threadCPU() - consumerCPU)) s cpu, waited \(String(format: "%.3f", waited)) s for decoders") }
        defer {
            cancelled.set()
            for c in channels { c.cancel() }
            group.wait()
        }
        for k in 0..<chunks {
            let w0 = Trace.enabled ? Date() : Date.distantPast
            let item = channels[k % decoders].take()
            if Trace.enabled { waited += Date().timeIntervalSince(w0) }
            switch item {
            case .events(let chunk):
                try consume(chunk)
                // Hand the chunk back to its decoder to free, off the fold thread.
                channels[k % decoders].recycle(chunk)
                done?(min(Int64(k + 1) * chunkSize, through - after))
            case .failed(let error):
                throw error
            case nil:
                throw StoreErrorShim.cancelled
            }
        }
    }

    private func decode(decoder d: Int, chunks: Int, into channel: Channel, cancelled: Flag) {
        let cpu0 = Trace.threadCPU()
        defer { Trace.note("[fold] decoder \(d): \(String(format: "%.3f", Trace.threadCPU() - cpu0)) s cpu") }
        do {
            var config = Configuration()
            config.readonly = true
            config.label = "slam-rebuild-reader"
            let queue = try DatabaseQueue(path: path, configuration: config)
            try queue.read { db in
                var sql = "SELECT position, type, body, occurred_at FROM events WHERE position > ? AND position <= ?"
                if let types {
                    sql += " AND type IN (" + types.map { "'\($0)'" }.joined(separator: ", ") + ")"
                }
                sql += " ORDER BY position"
                let stmt = try RawStatement(db, sql)
                let h = stmt.handle
                var fast = FastEventDecoder()
                var k = d
                while k < chunks, !cancelled.isSet {
                    channel.dropRecycled()
                    let lo = after + Int64(k) * chunkSize
                    let hi = min(lo + chunkSize, through)
                    stmt.reset()
                    stmt.bind(1, lo)
                    stmt.bind(2, hi)
                    var chunk = EventChunk(capacity: Int(hi - lo))
                    while try stmt.step() {
                        let position = stmt.int64(0)
                        let occurredAt = stmt.int64(3)
                        // The fast path reads the row's bytes in place; the full decoder is the fallback.
                        let typeBytes = UnsafeBufferPointer(start: sqlite3_column_text(h, 1), count: Int(sqlite3_column_bytes(h, 1)))
                        let code = FastEventDecoder.typeCode(typeBytes)
                        let bodyBytes = UnsafeBufferPointer(start: sqlite3_column_text(h, 2), count: Int(sqlite3_column_bytes(h, 2)))
                        if fast.decode(code: code, body: bodyBytes, position: position, occurredAt: occurredAt, into: &chunk) {
                            continue
                        }
                        let type = stmt.text(1)
                        do {
                            let event = try DomainEvent.decode(type: type, body: stmt.bytes(2))
                            chunk.append(event, position: position, occurredAt: occurredAt)
                        } catch {
                            chunk.appendUndecodable(position: position, occurredAt: occurredAt, type: type, error: "\(error)")
                        }
                    }
                    if !channel.put(.events(chunk)) { return }
                    k += decoders
                }
            }
        } catch {
            _ = channel.put(.failed(error))
        }
    }

    enum Item {
        case events(EventChunk)
        case failed(Error)
    }

    /// A small bounded FIFO between one decoder and the consumer.
    final class Channel: @unchecked Sendable {
        private let condition = NSCondition()
        private var items: [Item] = []
        private var head = 0
        private let capacity: Int
        private var cancelled = false

        init(capacity: Int) { self.capacity = capacity }

        /// Blocks while full; false once cancelled.
        func put(_ item: Item) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            while items.count - head >= capacity && !cancelled { condition.wait() }
            if cancelled { return false }
            items.append(item)
            condition.broadcast()
            return true
        }

        /// Blocks while empty; nil once cancelled.
        func take() -> Item? {
            condition.lock()
            defer { condition.unlock() }
            while items.count == head && !cancelled { condition.wait() }
            if items.count == head { return nil }
            let item = items[head]
            head += 1
            if head > 64 {
                items.removeFirst(head)
                head = 0
            }
            condition.broadcast()
            return item
        }

        private var recycled: [EventChunk] = []

        /// Gives a consumed chunk back, to be freed on the decoder's thread.
        func recycle(_ chunk: EventChunk) {
            condition.lock()
            recycled.append(chunk)
            condition.unlock()
        }

        /// Frees the chunks given back (on the calling thread).
        func dropRecycled() {
            condition.lock()
            let dropped = recycled
            recycled = []
            condition.unlock()
            _ = dropped
        }

        func cancel() {
            condition.lock()
            cancelled = true
            condition.broadcast()
            condition.unlock()
        }
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
        func set() { lock.lock(); value = true; lock.unlock() }
    }

    enum StoreErrorShim: Error { case cancelled }
}
