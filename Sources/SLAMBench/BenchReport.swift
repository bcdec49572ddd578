import Foundation
import SLAMJSON

/// Percentiles of a histogram recorded in microseconds.
public struct LatencySummary: Sendable {
    public var count: UInt64
    public var p50, p90, p99, p999, max: Double   // milliseconds

    init(_ h: LatencyHistogram) {
        count = h.totalCount
        func ms(_ v: UInt64) -> Double { Double(v) / 1000 }
        p50 = count == 0 ? 0 : ms(h.valueAtPercentile(50))
        p90 = count == 0 ? 0 : ms(h.valueAtPercentile(90))
        p99 = count == 0 ? 0 : ms(h.valueAtPercentile(99))
        p999 = count == 0 ? 0 : ms(h.valueAtPercentile(99.9))
        // The largest value recorded, not the top of its bucket (`max`, up to 0.1% above it:
        // "p99.9 77.00 max 77.06" for one value).
        max = count == 0 ? 0 : ms(h.maxRecorded)
    }

    /// "none" over no values: a p99 of 0 would read as a measurement (a run whose subscriber
    /// received no event printed, and wrote, a publish lag of 0 ms).
    var text: String {
        count == 0 ? "none"
            : String(format: "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms", p50, p90, p99, p999, max)
    }

    /// The percentiles are `null` over no values, for the same reason.
    func write(_ w: inout JSONWriter) {
        w.beginObject()
        w.field("count", Int64(count))
        for (key, value) in [("p50Ms", p50), ("p90Ms", p90), ("p99Ms", p99), ("p999Ms", p999), ("maxMs", max)] {
            w.key(key)
            if count == 0 { w.valueNull() } else { w.value(value) }
        }
        w.endObject()
    }
}

/// Everything a run measured.
public struct BenchReport: Sendable {
    public let options: BenchOptions
    public let setupSeconds: Double
    public let seconds: Double
    public let outcomes: Outcomes
    public let latency: LatencySummary
    public let publishLag: LatencySummary
    /// The run's events the subscriber received and timed (those after the head at its start).
    public let eventsReceived: Int
    /// The run's events not received within `LagSubscriber.catchUpSeconds` of its end: not timed, so not in `publishLag`
    /// (the relay that far behind; or the subscriber missed them). Nil, unknown, when the server
    /// did not answer after the run (the log's head at the end is the server's to say).
    public let eventsNotReceived: Int64?
    /// `HoldExpired` events the bench's subscriber received: holds that actually expired (the
    /// abandoned ones do only if the server's hold time, `slam serve --hold-ttl`, is shorter than
    /// the run).
    public let holdsExpired: Int
    /// How late those expiries were recorded (invariant 8; a violation when `verify` is on).
    public let expiries: ExpiryLateness
    public let walPeakBytes: Int64
    /// Commands the server executed during the run (GetStats); nil when GetStats after the run
    /// got no answer, or only refusals (`serverStoppedAnswering`).
    public let commandsExecuted: Int64?
    /// GetStats `repliesDropped` during the run: replies the server did not send (PROTOCOL's
    /// "exactly one reply" broken for a client gone, or past the replies the server keeps for
    /// clients that do not read).
    /// Nil as `commandsExecuted` is.
    public let repliesDropped: Int64?
    /// The server's settings, from GetStats (nil from a server that does not say).
    public let synchronous: String?
    public let groupCommit: Bool?
    public var invariants: InvariantReport?

    /// Replies received by the run's end, over its duration (those of the drain after it are not
    /// counted: with the server behind, they would make it look faster than it was).
    public var commandsPerSecond: Double { Double(outcomes.repliesInRun) / max(seconds, 0.001) }
    /// Open loop: commands sent later than scheduled because no simulated user was ready, or
    /// never sent: the offered rate was not met on time.
    public var offeredRateMissed: Bool { options.rate != nil && (outcomes.starved > 0 || outcomes.notSent > 0) }
    /// What happened when the server stopped answering after the run began (no GetStats after
    /// it, or no answer to the invariant check's queries), nil when it did not: its counts, or
    /// the invariants, are then missing, and `slam bench` exits 2 (1 if a violation was found
    /// all the same, by the subscriber's expiry checks).
    public var serverStoppedAnswering: String?
    /// The server restarted during the run (GetStats `batches`, counted from the process's
    /// start, went down): late and missing expiries are then not violations (DESIGN.md
    /// invariant 8 exempts those its restart recorded, which the bench cannot single out).
    public var serverRestarted = false
    /// The CPUs the bench may run on (its affinity when it started: `taskset -c 0 slam bench`
    /// gives [0]), and how many the machine has online; [] and 0 when unknown (not Linux, or the
    /// report made without a run).
    public var benchCPUs: [Int] = []
    public var onlineCPUs = 0
    /// An invariant found violated (through the server, or by the subscriber's expiry checks).
    public var violated: Bool { !(invariants?.ok ?? true) }
    /// The run was made, reported whole, and nothing was violated.
    public var ok: Bool { !violated && serverStoppedAnswering == nil }

    public var text: String {
        let o = outcomes
        var lines: [String] = []
        let mode = options.rate.map { "open loop at \($0)/s offered" }
            ?? "closed loop, \(options.connections) connections x \(options.inFlight) in flight"
        lines.append("SLAM rush: \(options.seats) seats, \(options.users) users\(options.queue ? ", waiting queue" : ""), \(mode), \(String(format: "%.1f", seconds)) s (set-up \(String(format: "%.1f", setupSeconds)) s)")
        lines.append("server       synchronous \(synchronous ?? "?"), group commit \(groupCommit.map { $0 ? "on" : "off" } ?? "?")")
        if !benchCPUs.isEmpty {
            let cpus = benchCPUs.count == onlineCPUs ? "any of the \(onlineCPUs) CPUs online"
                : (benchCPUs.count == 1 ? "CPU " : "CPUs ") + Self.cpuList(benchCPUs) + " of the \(onlineCPUs) online"
            lines.append("bench        may run on \(cpus)")
        }
        if offeredRateMissed {
            // Starved slots were sent late or never; unreached ones never, and not for want of a user.
            let starvedNeverSent = o.notSent - o.unreached
            let users = options.queue ? "users waiting in the queue cannot send: raise --queue-max-active" : "use more --users"
            let late = "the bench's own thread woke late (a loaded machine)"
            let hint = o.starved == 0 ? late : o.unreached > 0 ? users + "; " + late : users
            lines.append("warning      offered rate not met: \(o.starved - starvedNeverSent) commands sent late (no simulated user free; their latency counts from when they were due), \(o.notSent) never sent (\(starvedNeverSent) with no user free, \(o.unreached) due before the end but not reached by the bench in time; counted at the wait they had reached); "
                         + hint)
        }
        if let stopped = serverStoppedAnswering {
            var missing: [String] = []
            if commandsExecuted == nil { missing += ["the commands it executed", "the replies it dropped"] }
            if invariants?.checkedThroughServer == false { missing.append("the invariants checked through it") }
            let list = missing.count < 2 ? missing.joined()
                : missing.dropLast().joined(separator: ", ") + " and " + missing.last!
            lines.append("warning      \(stopped)" + (missing.isEmpty ? "" : "; missing what only the server can say: " + list))
        }
        if serverRestarted {
            lines.append("warning      the server restarted during the run: expiries late or missing are counted but not violations "
                         + "(DESIGN.md invariant 8 exempts the overdue ones a restart records at once)")
        }
        if eventsReceived == 0, let commandsExecuted, commandsExecuted > 0 {
            lines.append("warning      no event came from \(options.events) while the server executed commands: publish lag and expiries "
                         + "were not measured (is --events the server's event endpoint?)")
        }
        lines.append(String(format: "commands/s   %.0f  (%d replies in the run, %d after its end, %d sent, ",
                            commandsPerSecond.rounded(), o.repliesInRun, o.repliesAfterEnd, o.sent)
                     + "\(commandsExecuted.map(String.init) ?? "?") executed by the server)")
        lines.append("latency      " + latency.text)
        lines.append("publish lag  " + publishLag.text + "  (\(eventsReceived) events received"
                     + (eventsNotReceived.map { $0 > 0 ? "; \($0) of the run's not received within \(LagSubscriber.catchUpSeconds) s of its end, not timed" : "" }
                        ?? "; how many of the run's were not received is unknown: the server did not say its last") + ")")
        lines.append(String(format: "wal peak     %.1f MiB", Double(walPeakBytes) / 1_048_576))
        lines.append("outcomes     holds won \(o.holdsWon), SEAT_UNAVAILABLE \(o.seatUnavailable), SEAT_LIMIT_EXCEEDED \(o.seatLimit), paid \(o.paid), INSUFFICIENT_BALANCE \(o.insufficient), released \(o.released), cancelled \(o.cancelled), abandoned (left to expire) \(o.abandoned), expired (HoldExpired received) \(holdsExpired), HOLD_EXPIRED \(o.holdExpired)")
        if expiries.timed > 0 || expiries.missing != 0 {
            // `maxMs` is 0 or negative when every one was recorded at or before its `expiresAt` (all early).
            let latest = expiries.maxMs > 0 ? "recorded at most \(expiries.maxMs) ms after their expiresAt"
                : expiries.maxMs == 0 ? "every one recorded at or before its expiresAt, the latest at it"
                : "every one recorded before its expiresAt, the latest \(-expiries.maxMs) ms before"
            let missing = expiries.missing.map { "\($0) due more than \(ExpiryLateness.limitMs) ms before the last event and not recorded" }
                ?? "holds left unrecorded not checked: the subscriber missed events"
            lines.append("expiries     \(expiries.timed) of the run's holds expired (HoldExpired after their SeatsHeld), \(latest), \(expiries.late) more than \(ExpiryLateness.limitMs) ms after, \(expiries.early) at or before it; \(missing)")
        }
        if options.queue { lines.append("queue        joins \(o.joined) (waiting \(o.waiting)), status polls (GetQueueStatus, not counted as commands) \(o.polls), leaves \(o.left), token rejections \(o.queueRejections)") }
        lines.append("errors       OVERLOADED \(o.overloaded) (sent again, same key and body), no reply within \(String(format: "%g", options.replyTimeout)) s \(o.timedOut) (sent again, the same bytes; second replies \(o.duplicateReplies)), no reply \(o.noReply), replies dropped by the server \(repliesDropped.map(String.init) ?? "?"), other \(o.otherErrors)\(o.errorCodes.isEmpty ? "" : " \(o.errorCodes)")")
        if let inv = invariants, !inv.checkedThroughServer {
            lines.append("invariants   not checked through the server (see the warning above); the subscriber's expiry checks "
                         + (inv.ok ? "found nothing wrong" : "VIOLATED"))
            for v in inv.violations.prefix(20) { lines.append("  violation: " + v) }
        } else if let inv = invariants {
            lines.append("invariants   \(inv.ok ? "OK" : "VIOLATED"): \(inv.usersChecked) users' balances equal their history, points used once per paid reservation and refunded once per cancelled one; \(inv.soldSeats) seats SOLD = \(inv.confirmedSeats) seats in confirmed reservations, none in two; reservations by status \(inv.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
            for v in inv.violations.prefix(20) { lines.append("  violation: " + v) }
        }
        return lines.joined(separator: "\n")
    }

    /// CPUs as `taskset` writes them: ascending, runs of three or more as ranges ("0,2-5").
    static func cpuList(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = cpus.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count, sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts += j - i >= 2 ? ["\(sorted[i])-\(sorted[j])"] : sorted[i...j].map(String.init)
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    public var json: String {
        var w = JSONWriter()
        let o = outcomes
        w.beginObject()
        w.field("seats", options.seats); w.field("users", options.users); w.field("queue", options.queue)
        if let rate = options.rate { w.field("offeredRate", rate) } else { w.field("inFlight", options.inFlight) }
        w.field("connections", options.connections); w.field("threads", options.threads)
        w.key("seconds"); w.value(seconds)
        w.key("replyTimeoutSeconds"); w.value(options.replyTimeout)
        w.key("setupSeconds"); w.value(setupSeconds)
        w.key("commandsPerSecond"); w.value(commandsPerSecond.rounded())
        w.field("repliesInRun", outcomes.repliesInRun)
        w.key("latency"); latency.write(&w)
        w.key("publishLag"); publishLag.write(&w)
        w.field("eventsReceived", eventsReceived)
        // Only when known: the log's head at the end comes from the server.
        if let eventsNotReceived { w.field("eventsNotReceived", eventsNotReceived) }
        w.field("holdsExpired", holdsExpired)
        w.key("expiries"); w.beginObject()
        w.field("timed", expiries.timed); w.field("maxLateMs", expiries.maxMs); w.field("late", expiries.late)
        w.field("early", expiries.early)
        // `missing` only when checked (the subscriber missed no event).
        if let missing = expiries.missing { w.field("missing", missing) }
        w.endObject()
        w.field("walPeakBytes", walPeakBytes)
        // The server's counts only from a server that answered after the run.
        w.field("serverStoppedAnswering", serverStoppedAnswering != nil)
        w.field("serverRestarted", serverRestarted)
        if let serverStoppedAnswering { w.field("serverStoppedAnsweringError", serverStoppedAnswering) }
        if let commandsExecuted { w.field("commandsExecuted", commandsExecuted) }
        if let repliesDropped { w.field("repliesDropped", repliesDropped) }
        if let synchronous { w.field("synchronous", synchronous) }
        if let groupCommit { w.field("groupCommit", groupCommit) }
        w.key("benchCPUs"); w.beginArray(); for cpu in benchCPUs { w.value(Int64(cpu)) }; w.endArray()
        w.field("onlineCPUs", onlineCPUs)
        w.field("offeredRateMissed", offeredRateMissed)
        w.key("outcomes"); w.beginObject()
        for (k, v) in [("sent", o.sent), ("replies", o.replies), ("holdsWon", o.holdsWon), ("seatUnavailable", o.seatUnavailable),
                       ("seatLimitExceeded", o.seatLimit), ("paid", o.paid), ("insufficientBalance", o.insufficient),
                       ("released", o.released), ("cancelled", o.cancelled), ("abandoned", o.abandoned),
                       ("holdExpired", o.holdExpired), ("joined", o.joined), ("left", o.left), ("waiting", o.waiting),
                       ("queueRejections", o.queueRejections), ("overloaded", o.overloaded), ("resent", o.resent),
                       ("timedOut", o.timedOut), ("duplicateReplies", o.duplicateReplies),
                       ("otherErrors", o.otherErrors),
                       ("starved", o.starved), ("notSent", o.notSent), ("unreached", o.unreached), ("noReply", o.noReply),
                       ("repliesAfterEnd", o.repliesAfterEnd), ("polls", o.polls)] {
            w.field(k, v)
        }
        w.key("errorCodes"); w.beginObject()
        for (k, v) in o.errorCodes.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
        w.endObject()
        w.endObject()
        if let inv = invariants {
            w.key("invariants"); w.beginObject()
            w.field("ok", inv.ok); w.field("checkedThroughServer", inv.checkedThroughServer)
            w.field("usersChecked", inv.usersChecked); w.field("soldSeats", inv.soldSeats)
            w.field("confirmedSeats", inv.confirmedSeats)
            w.key("statusCounts"); w.beginObject()
            for (k, v) in inv.statusCounts.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
            w.endObject()
            w.key("violations"); w.beginArray(); for v in inv.violations { w.value(v) }; w.endArray()
            w.endObject()
        }
        w.endObject()
        return w.string
    }
}
