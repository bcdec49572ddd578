import Histogram

/// Counts of what happened to the rush's commands.
public struct Outcomes: Sendable {
    public var sent = 0
    public var replies = 0
    public var holdsWon = 0
    public var seatUnavailable = 0
    public var seatLimit = 0
    public var paid = 0
    public var insufficient = 0
    public var released = 0
    public var cancelled = 0
    public var abandoned = 0
    public var holdExpired = 0
    public var joined = 0
    public var left = 0
    public var waiting = 0
    public var queueRejections = 0
    public var overloaded = 0
    public var otherErrors = 0
    /// Send slots with no simulated user ready: in the open loop the offered rate was not met;
    /// in the closed loop the connection is owed the send, made as soon as a user is ready.
    public var starved = 0
    public var errorCodes: [String: Int] = [:]

    mutating func add(_ o: Outcomes) {
        sent += o.sent; replies += o.replies; holdsWon += o.holdsWon; seatUnavailable += o.seatUnavailable
        seatLimit += o.seatLimit; paid += o.paid; insufficient += o.insufficient; released += o.released
        cancelled += o.cancelled; abandoned += o.abandoned; holdExpired += o.holdExpired; joined += o.joined
        waiting += o.waiting; left += o.left; queueRejections += o.queueRejections; overloaded += o.overloaded
        otherErrors += o.otherErrors; starved += o.starved
        for (k, v) in o.errorCodes { errorCodes[k, default: 0] += v }
    }
}

typealias LatencyHistogram = Histogram<UInt64>

func newHistogram() -> LatencyHistogram {
    LatencyHistogram(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
}
