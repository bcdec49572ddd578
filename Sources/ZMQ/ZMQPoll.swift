import CZMQ

/// One entry of a `zmqPoll`: a socket or a plain file descriptor, the events asked for, and,
/// after the poll, the events that are ready.
public struct ZMQPollItem {
    /// Keeps the socket alive while the item exists; its handle is read at poll time.
    let socket: ZMQSocket?
    let fd: Int32
    let events: Int16
    /// The ready events after the last `zmqPoll` of this item (`ZMQ_POLLIN`, `ZMQ_POLLOUT`, ...).
    public internal(set) var revents: Int16 = 0

    /// Polls `socket` for a whole message to receive (`readable`) and/or room to send (`writable`).
    public static func socket(_ s: ZMQSocket, readable: Bool = true, writable: Bool = false) -> ZMQPollItem {
        var events: Int16 = 0
        if readable { events |= Int16(ZMQ_POLLIN) }
        if writable { events |= Int16(ZMQ_POLLOUT) }
        return ZMQPollItem(socket: s, fd: 0, events: events)
    }

    /// Polls a file descriptor (e.g. `Wakeup.fd`) for readability.
    public static func fd(_ fd: Int32, readable: Bool = true) -> ZMQPollItem {
        ZMQPollItem(socket: nil, fd: fd, events: readable ? Int16(ZMQ_POLLIN) : 0)
    }

    /// True when the last poll found the item readable (for a socket: a message can be received).
    public var isReadable: Bool { revents & Int16(ZMQ_POLLIN) != 0 }

    /// True when the last poll found the item writable (for a socket: a message can be sent).
    public var isWritable: Bool { revents & Int16(ZMQ_POLLOUT) != 0 }
}

/// `zmq_poll` over `items`: waits until at least one is ready or `timeoutMs` passes (-1 waits
/// forever, 0 just checks), sets every item's `revents`, and returns how many items are ready.
///
/// Returns 0 when the timeout expired or a signal interrupted the wait (`EINTR`), so a caller's
/// loop re-checks its state and polls again. Throws `ZMQError` (e.g. `ETERM`, or `ENOTSOCK` for a
/// closed socket). Allocates nothing on the heap.
@discardableResult
public func zmqPoll(_ items: inout [ZMQPollItem], timeoutMs: Int) throws -> Int {
    let count = items.count
    return try withUnsafeTemporaryAllocation(of: zmq_pollitem_t.self, capacity: count) { raw in
        for index in 0..<count {
            let item = items[index]
            let socket = try item.socket?.liveHandle("zmq_poll")
            raw.initializeElement(
                at: index,
                to: zmq_pollitem_t(socket: socket, fd: item.fd, events: item.events, revents: 0))
        }
        let ready = try zmqCall("zmq_poll", soft: .interrupted) {
            zmq_poll(raw.baseAddress, Int32(count), timeoutMs)
        }
        for index in 0..<count {
            items[index].revents = ready == nil ? 0 : raw[index].revents
        }
        return Int(ready ?? 0)
    }
}

/// The version of the libzmq linked at run time (`zmq_version`).
public func zmqVersion() -> (major: Int, minor: Int, patch: Int) {
    var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return (Int(major), Int(minor), Int(patch))
}
