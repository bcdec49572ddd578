import Foundation
import SLAMDomain
import SLAMJSON
import Testing

// The waiting queue's time rules applied in the order things happened (`Queues.Plan`): the log
// must not depend on when sweeps run. Random joins, holds and leaves on random small queues are
// decided twice, once with a few sweeps at random instants (what the server does: a sweep every
// 200 ms, and the commands' own catching up) and once with a sweep at every millisecond (an
// oracle), and must agree on every reply and every token's final state; after every event,
// never more than `maxActive` active, active tokens in `activeUntil` order, no token ending
// twice or activated after it ended, and after each command no free slot with tokens waiting
// and nothing overdue. (Written by a review, which found with it the token leaving passed over
// at instants before it left.)

private enum Op { case join(Int), leave(Int), hold(Int) }

private struct Run {
    var state: DomainState
    var ids = SequentialIdGenerator()
    var tokenOf: [Int: String] = [:]
    var log: [String] = []
    var ended: Set<String> = []
    var problems: [String] = []
    let sch: String
    let policy: QueuePolicy

    mutating func apply(_ d: Decision, at now: Millis, what: String) {
        for (e, _) in d.events {
            switch e {
            case .queueTokenExpired(let t), .queueLeft(let t):
                if ended.contains(t.tokenId) { problems.append("\(what)@\(now): \(t.tokenId) ends twice") }
                ended.insert(t.tokenId)
            case .queueTokenActivated(let t, _):
                if ended.contains(t.tokenId) { problems.append("\(what)@\(now): ended \(t.tokenId) activated") }
            default: break
            }
            state.evolve(e, at: now)
            let q = state.queues[sch]!
            if Int64(q.active.count) > policy.maxActive { problems.append("\(what)@\(now): \(q.active.count) active") }
            let untils = q.active.map { state.tokens[$0]!.activeUntil! }
            if untils != untils.sorted() { problems.append("\(what)@\(now): active not in activeUntil order \(untils)") }
        }
        // After the command: no free slot while someone waits, and nothing overdue.
        if what.hasPrefix("holdSeats"), !d.events.contains(where: { if case .queueTokenActivated = $0.event { return true }; return false }) { return }
        let q = state.queues[sch]!
        if Int64(q.active.count) < policy.maxActive, !q.waiting.isEmpty { problems.append("\(what)@\(now): free slot with waiters") }
        for id in q.active where state.tokens[id]!.effectiveStatus(at: now, policy: policy) == .expired {
            problems.append("\(what)@\(now): overdue active \(id)")
        }
        for id in q.waiting where state.tokens[id]!.effectiveStatus(at: now, policy: policy) == .expired {
            problems.append("\(what)@\(now): overdue waiting \(id)")
        }
    }

    mutating func tick(_ now: Millis) {
        var g = ids
        let d = try! Decider.decide(.tickQueue(scheduleId: sch), state: state, context: DecisionContext(now: now), ids: &g)
        apply(d, at: now, what: "tick")
    }

    mutating func run(_ op: Op, _ now: Millis) -> String {
        let user = { (u: Int) in "usr_f\(u)" }
        let cmd: Command
        switch op {
        case .join(let u): cmd = .joinQueue(userId: user(u), scheduleId: sch)
        case .leave(let u):
            guard let t = tokenOf[u] else { return "-" }
            cmd = .leaveQueue(userId: user(u), tokenId: t)
        case .hold(let u):
            guard let t = tokenOf[u] else { return "-" }
            cmd = .holdSeats(userId: user(u), scheduleId: sch, seatNumbers: [u + 1], queueToken: t)
        }
        var g = ids
        do {
            let d = try Decider.decide(cmd, state: state, context: DecisionContext(now: now, holdTtl: 1), ids: &g)
            ids = g
            apply(d, at: now, what: "\(cmd)")
            if case .join(let u) = op, case .string(let t)? = d.result["tokenId"] {
                tokenOf[u] = t
                // ahead/status right after the events?
                let q = state.queues[sch]!
                let st = d.result["status"]!
                if case .string("WAITING") = st {
                    let idx = q.waiting.firstIndex(of: t)
                    if idx == nil || d.result["ahead"] != .int(Int64(idx!)) {
                        problems.append("join@\(now): \(t) WAITING ahead \(String(describing: d.result["ahead"])) but index \(String(describing: idx))")
                    }
                } else if case .string("ACTIVE") = st, !q.active.contains(t) {
                    problems.append("join@\(now): \(t) ACTIVE but not in active")
                }
            }
            if case .hold = op { return "ok" }
            return "\(d.result["status"].map { "\($0)" } ?? "")"
        } catch {
            return "\(error.code)"
        }
    }
}

private func world(_ sch: String, _ policy: QueuePolicy, users: Int) -> DomainState {
    var s = DomainState()
    for u in 0..<users { s.evolve(.userRegistered(userId: "usr_f\(u)", name: "U\(u)"), at: T.setUp) }
    s.evolve(.concertCreated(concertId: concert, name: "C", artist: "A"), at: T.setUp)
    let def = ScheduleDefinition(scheduleId: sch, concertId: concert, startsAt: T.starts, reservationOpensAt: T.opens,
                                 reservationClosesAt: T.closes, sections: [Section(name: "A", seatCount: 1000, price: 0)],
                                 maxSeatsPerUser: 10, queue: policy)
    s.evolve(.concertScheduled(def), at: T.setUp)
    return s
}

@Suite("The waiting queue's log against a sweep at every millisecond")
struct QueueTimelineTests {
    static func scenario(seed: UInt64, leaves: Bool, holds: Bool, grid: Bool = false) -> [String] {
        var r = Rng(state: seed)
        let policy = QueuePolicy(maxActive: Int64(1 + r.next(3)), activeTtlSeconds: Int64(1 + r.next(3)),
                                 waitingTtlSeconds: Int64(1 + r.next(4)))
        let users = 8
        let sch = "sch_f"
        let base = world(sch, policy, users: users)
        let span: Millis = 12_000
        var ops: [(Millis, Op)] = []
        for _ in 0..<(6 + r.next(14)) {
            let t = grid ? T.now + 500 * Millis(r.next(Int(span / 500))) : T.now + Millis(r.next(Int(span)))
            let u = r.next(users)
            let k = r.next(10)
            let op: Op = (leaves && k < 2) ? .leave(u) : (holds && k < 5) ? .hold(u) : .join(u)
            ops.append((t, op))
        }
        ops.sort { $0.0 < $1.0 }
        var sweeps: Set<Millis> = []
        for _ in 0..<r.next(6) { sweeps.insert(grid ? T.now + 500 * Millis(r.next(Int(span / 500))) + 1 : T.now + Millis(r.next(Int(span)))) }

        var lazy = Run(state: base, sch: sch, policy: policy)
        var oracle = Run(state: base, sch: sch, policy: policy)
        var out: [String] = []
        var i = 0
        for now in T.now...(T.now + span + 1) {
            oracle.tick(now)
            if sweeps.contains(now) { lazy.tick(now) }
            while i < ops.count, ops[i].0 == now {
                let a = lazy.run(ops[i].1, now), b = oracle.run(ops[i].1, now)
                if a != b { out.append("seed \(seed) \(policy): \(ops[i].1)@\(now - T.now): lazy \(a) oracle \(b)") }
                i += 1
            }
        }
        let end = T.now + span + 1
        lazy.tick(end)
        for (id, t) in oracle.state.tokens {
            let l = lazy.state.tokens[id]
            if l?.status != t.status || l?.activeUntil != t.activeUntil {
                out.append("seed \(seed) \(policy): \(id) lazy \(String(describing: l.map { ($0.status, $0.activeUntil.map { $0 - T.now }) })) oracle \(t.status) \(String(describing: t.activeUntil.map { $0 - T.now }))")
            }
        }
        out += lazy.problems.map { "seed \(seed) lazy: \($0)" }
        out += oracle.problems.map { "seed \(seed) oracle: \($0)" }
        return out
    }

    static func check(seeds: ClosedRange<UInt64>, leaves: Bool, holds: Bool, grid: Bool = false) {
        var all: [String] = []
        for seed in seeds { all += scenario(seed: seed, leaves: leaves, holds: holds, grid: grid) }
        #expect(all.isEmpty, "\(all.prefix(10).joined(separator: "\n"))")
    }

    @Test("joins only") func joins() { Self.check(seeds: 1...40, leaves: false, holds: false) }
    @Test("joins and holds") func holds() { Self.check(seeds: 1...40, leaves: false, holds: true) }
    @Test("joins, holds and leaves") func leaves() { Self.check(seeds: 1...80, leaves: true, holds: true) }
    @Test("joins and holds on a 500 ms grid (many ends at one instant)") func grid() {
        Self.check(seeds: 1...60, leaves: false, holds: true, grid: true)
    }
}

/// A line's numbering (`TokenLine.position`) against a scan, through random
/// joins and removals from the front and from behind it, as admissions, expiries and leaves do.
@Suite("The waiting line's index without a scan")
struct WaitingIndexTests {
    @Test("every waiting token's index equals its place in the line", arguments: 1...20 as ClosedRange<UInt64>)
    func matchesAScan(seed: UInt64) {
        var r = Rng(state: seed)
        var q = QueueState(scheduleId: "sch_i", policy: QueuePolicy(maxActive: 1, activeTtlSeconds: 1, waitingTtlSeconds: 1),
                           version: 0)
        var next = 0
        for _ in 0..<400 {
            let k = r.next(10)
            if k < 5 || q.waiting.isEmpty {
                q.appendWaiting("tok_\(next)")
                next += 1
            } else {
                let i = k < 8 ? 0 : r.next(q.waiting.count)
                q.removeWaiting(q.waiting[i])
            }
            for (i, id) in q.waiting.enumerated() where q.waiting.position(of: id) != i {
                Issue.record("seed \(seed): \(id) at \(i), indexed \(String(describing: q.waiting.position(of: id)))")
                return
            }
        }
        #expect(q.waiting.position(of: "tok_nope") == nil)
    }

    /// The line's front is an offset into its storage, compacted once the tokens gone from the
    /// front are half of it: the line stays the same as an array's through many compactions.
    @Test("a long line, emptied from the front and from behind it, stays equal to an array")
    func longLine() {
        var q = QueueState(scheduleId: "sch_l", policy: QueuePolicy(maxActive: 1, activeTtlSeconds: 1, waitingTtlSeconds: 1),
                           version: 0)
        var model: [String] = []
        var r = Rng(state: 7)
        var next = 0
        for step in 0..<20_000 {
            // The line grows to about 2,000 tokens, then drains.
            if r.next(10) < (step < 10_000 ? 6 : 3) || model.isEmpty {
                let id = "tok_\(next)"
                next += 1
                q.appendWaiting(id)
                model.append(id)
            } else {
                let i = r.next(20) == 0 ? r.next(model.count) : 0
                q.removeWaiting(model[i])
                model.remove(at: i)
            }
            // Compared plainly: a failed #expect on two long arrays would diff them at length.
            if step % 500 == 0 || model.count < 3 || step == 19_999 {
                guard Array(q.waiting) == model else {
                    Issue.record("step \(step): the line differs from the array (\(q.waiting.count) against \(model.count))")
                    return
                }
                if let last = model.last, q.waiting.position(of: last) != model.count - 1 {
                    Issue.record("step \(step): the last token is not indexed last")
                    return
                }
            }
        }
    }
}
