import Foundation
import SLAMDomain

/// A bounded FIFO for handing work between threads. `offer` never blocks: it refuses when full,
/// which is how the server answers OVERLOADED at once instead of queueing without bound.
final class BoundedQueue<Element>: @unchecked Sendable {
    private var items: [Element] = []
    private var head = 0
    private var takenCount = 0
    private let capacity: Int
    private let condition = NSCondition()
    private var closed = false

    init(capacity: Int) { self.capacity = capacity }

    /// Adds an element; false when the queue is full or closed.
    func offer(_ e: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed, items.count - head < capacity else { return false }
        items.append(e)
        condition.signal()
        return true
    }

    /// Takes up to `max` elements, waiting until at least one is there, the deadline passes
    /// (`until`, absolute), or the queue is closed and empty (then returns nil).
    func take(max: Int, until deadline: Date? = nil) -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        while items.count == head {
            if closed { return nil }
            if let deadline {
                if !condition.wait(until: deadline) { return [] }
            } else {
                condition.wait()
            }
        }
        let end = min(items.count, head + max)
        let out = Array(items[head..<end])
        takenCount += end - head
        head = end
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
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

    /// Whether `close()` was called.
    var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
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
        return items.count - head
    }
}
