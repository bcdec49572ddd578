import Foundation
import SLAMDomain

/// A first-in, first-out array: taking from the front moves an index, and the array is
/// compacted when it empties or its taken front outgrows what is left.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { head == items.count }

    mutating func append(_ e: Element) { items.append(e) }

    /// The first `n` elements at most, removed.
    mutating func removeFirst(upTo n: Int) -> [Element] {
        let end = min(items.count, head + n)
        let out = Array(items[head..<end])
        head = end
        compact()
        return out
    }

    /// The first element, removed; the queue must not be empty.
    mutating func removeFirst() -> Element {
        let e = items[head]
        head += 1
        compact()
        return e
    }

    private mutating func compact() {
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}

/// A bounded FIFO for handing work between threads. `offer` never blocks: it refuses when full,
/// which is how the server answers OVERLOADED at once instead of queueing without bound.
final class BoundedQueue<Element>: @unchecked Sendable {
    private var items = FIFO<Element>()
    private var takenCount = 0
    private let capacity: Int
    private let condition = NSCondition()
    private var closed = false

    init(capacity: Int) { self.capacity = capacity }

    /// Adds an element; false when the queue is full or closed.
    func offer(_ e: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed, items.count < capacity else { return false }
        items.append(e)
        condition.signal()
        return true
    }

    /// Takes up to `max` elements, waiting until at least one is there, the deadline passes
    /// (`until`, absolute), or the queue is closed and empty (then returns nil).
    func take(max: Int, until deadline: Date? = nil) -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty {
            if closed { return nil }
            if let deadline {
                if !condition.wait(until: deadline) { return [] }
            } else {
                condition.wait()
            }
        }
        let out = items.removeFirst(upTo: max)
        takenCount += out.count
        return out
    }

    /// Wakes a waiting `take` without adding anything.
    func poke() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// No more offers; takers drain what is left, then get nil.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// How many elements were ever taken (only grows).
    var taken: Int {
        condition.lock()
        defer { condition.unlock() }
        return takenCount
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count
    }
}

/// A bounded queue that is fair between clients: elements wait in a line per key (the client's
/// routing id), and `take` takes one from each line in turn. The queries: with one first-in,
/// first-out queue, a client that pipelined thousands of seat maps delayed every other client's
/// queries, `GetStats` too, by seconds (robustness probe); now a query waits behind at most one
/// query of each other client with queries queued, per worker. `offer` refuses past `capacity`
/// in all, or when closed.
final class FairQueue<Element>: @unchecked Sendable {
    private var lines: [[UInt8]: FIFO<Element>] = [:]
    /// The keys with elements waiting, in the order their turns come (each once).
    private var turns = FIFO<[UInt8]>()
    private var total = 0
    private let capacity: Int
    private let key: (Element) -> [UInt8]
    private let condition = NSCondition()
    private var closed = false

    init(capacity: Int, key: @escaping (Element) -> [UInt8]) {
        self.capacity = capacity
        self.key = key
    }

    /// Adds an element to its key's line; false when the queue is full or closed.
    func offer(_ e: Element) -> Bool {
        let k = key(e)
        condition.lock()
        defer { condition.unlock() }
        guard !closed, total < capacity else { return false }
        if lines[k] == nil { turns.append(k) }
        lines[k, default: FIFO()].append(e)
        total += 1
        condition.signal()
        return true
    }

    /// Takes up to `max` elements, one from each line in turn, waiting until at least one is
    /// there or the queue is closed and empty (then returns nil).
    func take(max: Int) -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        while total == 0 {
            if closed { return nil }
            condition.wait()
        }
        var out: [Element] = []
        out.reserveCapacity(min(max, total))
        while out.count < max, total > 0 {
            let k = turns.removeFirst()
            out.append(lines[k]!.removeFirst())
            total -= 1
            if lines[k]!.isEmpty { lines[k] = nil } else { turns.append(k) }
        }
        return out
    }

    /// No more offers; takers drain what is left, then get nil.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Whether `close()` was called.
    var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return total
    }
}
