import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMStore
import ZMQ

/// The outbox relay: on its own thread, with its own reader connection, it publishes outbox rows
/// on the PUB socket in `seq` order (PROTOCOL.md section 7) and a `$heartbeat` every second.
/// The writer wakes it after each commit, so lag is the time to read and send, not a polling
/// interval. How far it got goes to the writer, which records it with its next transaction
/// (the relay never takes the write lock); after a crash it republishes from there: at least once.
final class Relay: @unchecked Sendable {
    private let store: EventStore
    private let socket: ZMQSocket
    /// The heartbeat's cadence is real time ("every second", PROTOCOL.md section 7), whatever an
    /// injected test clock says (a frozen or rewound test clock must not silence heartbeats), and
    /// monotonic: a wall clock stepped back must not silence them for the length of the step.
    private let clock: Clock = MonotonicClock()
    private let published: Shared<Int64>
    private let condition = NSCondition()
    private var dirty = true
    private var stopping = false
    private var headSeq: Int64
    private var categories: [String: Int64]
    private let done = DispatchSemaphore(value: 0)
    /// Events read a page at a time.
    private let pageSize: Int
    /// After a failed read, the next try comes this much later (or with the next heartbeat),
    /// not with the next commit's wake-up.
    private let retryInterval: Millis
    /// Reads of the outbox that failed (for tests).
    let readFailures = Shared(0)

    init(store: EventStore, socket: ZMQSocket, published: Shared<Int64>, heads: (seq: Int64, categories: [String: Int64]),
         pageSize: Int = 1000, retryInterval: Millis = 100) {
        self.store = store
        self.socket = socket
        self.published = published
        headSeq = heads.seq
        categories = heads.categories
        self.pageSize = pageSize
        self.retryInterval = retryInterval
    }

    /// Called by the writer after a commit.
    func notify(headSeq: Int64, categories: [String: Int64]) {
        condition.lock()
        self.headSeq = headSeq
        self.categories = categories
        dirty = true
        condition.signal()
        condition.unlock()
    }

    func start() {
        ThreadRole.start("slam-relay", priority: .background) { [self] in
            run()
            done.signal()
        }
    }

    /// Publishes what is committed, then stops.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        done.wait()
    }

    /// Publishes, a page at a time, whatever is committed past `last`, each time the writer
    /// wakes it; a heartbeat goes out whenever one is due, between pages too (a backlog of
    /// millions must not silence it), and whether the read worked or not. A read that fails is
    /// logged and tried again `retryInterval` later (or at the next heartbeat), not at each
    /// commit's wake-up, which under load would spin.
    private func run() {
        var last = published.get()
        /// Each category's highest `categorySeq` this relay has sent.
        var sent: [String: Int64] = [:]
        var nextHeartbeat: Millis = 0
        var retryAt: Millis?
        while true {
            condition.lock()
            while !stopping {
                let now = clock.now()
                if let at = retryAt { if now >= at { break } } else if dirty { break }
                let wakeAt = min(nextHeartbeat, retryAt ?? nextHeartbeat)
                if now >= wakeAt || !condition.wait(until: Date(timeIntervalSinceNow: Double(wakeAt - now) / 1000)) { break }
            }
            dirty = false
            let stop = stopping
            let heads = (headSeq, categories)
            condition.unlock()
            // A heartbeat names the heads the writer gave before this wake-up, raised to what this
            // relay has sent, `headSeq` and each category alike (it reads whatever is committed
            // when it reads, which may be past them). After reads that worked, that covers
            // everything committed before they began: no heartbeat names less than a subscriber
            // has received, nor than the position of a reply sent before the reads began (its
            // commit was readable by then); and, but for one sent between pages of a backlog, no
            // more than the relay has sent.
            func beatIfDue() {
                let now = clock.now()
                guard now >= nextHeartbeat else { return }
                nextHeartbeat = now + 1000
                let categories = heads.1.merging(sent) { given, sent in max(given, sent) }
                do {
                    try socket.send([Array("$heartbeat".utf8), heartbeat(headSeq: max(heads.0, last), categories: categories)],
                                    dontWait: true)
                } catch {
                    logError("relay heartbeat: \(error)")
                }
            }
            do {
                // Reads until a page comes back short: that page held everything committed when
                // it was read (one read transaction a wake-up in the usual case, not two).
                var full = true
                while full {
                    let batch = try store.pool.read { db in
                        try EventStore.readOutbox(db, afterSeq: last, limit: pageSize, category: nil)
                    }
                    full = batch.count == pageSize
                    for m in batch {
                        // PUB never blocks: past a subscriber's high-water mark libzmq drops, and
                        // the subscriber recovers through ReadEvents.
                        try socket.send([Array(m.topic.utf8), Array(m.header.utf8), Array(m.body.utf8)], dontWait: true)
                        last = m.seq
                        sent[m.category] = m.categorySeq
                    }
                    published.set(last)
                    if full { beatIfDue() }
                }
                retryAt = nil
            } catch {
                readFailures.update { $0 += 1 }
                logError("relay: \(error); trying again in \(retryInterval) ms")
                retryAt = clock.now() + retryInterval
            }
            beatIfDue()
            if stop { break }
        }
        socket.close()
    }

    /// Every category's highest `categorySeq`, 0 for one with no event yet (section 7: the
    /// heartbeat names them all, so a category subscriber always finds its own).
    private func heartbeat(headSeq: Int64, categories known: [String: Int64]) -> [UInt8] {
        var categories = Dictionary(uniqueKeysWithValues: DomainEvent.categories.map { ($0, Int64(0)) })
        categories.merge(known) { _, seq in seq }
        var w = JSONWriter()
        w.beginObject()
        w.field("storeId", store.storeId)
        w.field("headSeq", headSeq)
        w.key("categories")
        w.beginObject()
        for (k, v) in categories.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
        w.endObject()
        w.endObject()
        return w.bytes
    }
}
