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
    /// `OVERLOADED` refusals (not answers: each command is sent again, same key and body, 10 ms
    /// later, and counted once, at its final reply, its latency running from when it was first
    /// due), and those sends again.
    public var overloaded = 0
    public var resent = 0
    /// Requests (commands and status polls) without a reply `replyTimeout` after they were
    /// sent, sent again (the same bytes: same request id, key and body), each time; and the
    /// further replies that then came (an earlier try's, late, or a replay), ignored.
    public var timedOut = 0
    public var duplicateReplies = 0
    public var otherErrors = 0
    /// Send slots with no simulated user ready: in the open loop the command is sent as soon as
    /// one is, late, its latency counted from the slot's time (and the offered rate was not met
    /// on time); in the closed loop the connection is owed the send, made as soon as a user is.
    public var starved = 0
    /// Open loop: slots still owed when the run ended, never sent, counted in the latency at the
    /// wait they had reached: those `starved` of a free user, and those `unreached`.
    public var notSent = 0
    /// Open loop: slots due in the run that the bench's own loop had not reached when it woke
    /// past the run's end (a driver thread that did not get a core in time), never sent (among
    /// `notSent`, not `starved`: a user may have been free).
    public var unreached = 0
    /// Commands without a reply when the bench stopped waiting (counted in the latency at the
    /// wait they had reached).
    public var noReply = 0
    /// Replies that came after the run's end (`--duration`), in the drain: counted in `replies`
    /// and the latency, not in commands/s.
    public var repliesAfterEnd = 0
    /// `GetQueueStatus` queries of users waiting in the queue (not commands: not in `sent`,
    /// `replies` or the latency).
    public var polls = 0
    public var errorCodes: [String: Int] = [:]

    /// Replies that came by the run's end: what commands/s counts.
    public var repliesInRun: Int { replies - repliesAfterEnd }

    mutating func add(_ o: Outcomes) {
        sent += o.sent; replies += o.replies; holdsWon += o.holdsWon; seatUnavailable += o.seatUnavailable
        seatLimit += o.seatLimit; paid += o.paid; insufficient += o.insufficient; released += o.released
        cancelled += o.cancelled; abandoned += o.abandoned; holdExpired += o.holdExpired; joined += o.joined
        waiting += o.waiting; left += o.left; queueRejections += o.queueRejections; overloaded += o.overloaded
        resent += o.resent; timedOut += o.timedOut; duplicateReplies += o.duplicateReplies
        otherErrors += o.otherErrors; starved += o.starved; notSent += o.notSent; unreached += o.unreached; noReply += o.noReply
        repliesAfterEnd += o.repliesAfterEnd; polls += o.polls
        for (k, v) in o.errorCodes { errorCodes[k, default: 0] += v }
    }
}

typealias LatencyHistogram = Histogram<UInt64>

/// Microseconds from 1 µs to 100,000 s: past the longest run (`--duration` 86,400 s) and its
/// drain, so no latency falls outside (one that did would be clamped to the top, not lost).
func newHistogram() -> LatencyHistogram {
    LatencyHistogram(lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000_000, numberOfSignificantValueDigits: .three)
}

extension LatencyHistogram {
    /// Records `value`, clamped to the top of the range (`record` would drop it).
    mutating func recordClamped(_ value: UInt64) {
        _ = record(Swift.min(value, highestTrackableValue))
    }
}
