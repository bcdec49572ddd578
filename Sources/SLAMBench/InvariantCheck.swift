import SLAMClient
import SLAMJSON

/// DESIGN.md section 2's invariants, checked through the server's queries after a run: no seat
/// sold twice or held by two live reservations, every balance equal to its history and never
/// below 0, points used once for each confirmed (or later cancelled) reservation and refunded
/// once for each cancelled one, and the seat map's sold seats exactly the confirmed
/// reservations' seats. A check that cannot see everything it needs (a query refused, a user with
/// more reservations than `ListReservations` returns) is a violation too, never a silent pass.
///
/// HELD seats are not compared with HELD reservations: holds go on expiring while the check
/// reads (with a short `--hold-ttl`), so the seat map and the reservation lists, read at
/// different moments, may differ without anything being wrong. After the run nothing else
/// changes: no seat is held, paid for or cancelled by anyone but the bench.
struct InvariantCheck {
    let client: SLAMClient
    let scheduleId: String
    let userIds: [String]

    /// `ListReservations` returns at most this many (PROTOCOL.md section 5), newest first, and
    /// cannot page back.
    static let listLimit = 1000

    func run() throws -> InvariantReport {
        var report = InvariantReport()
        let users = try pipelined(client, userIds.map { ("GetUser", "{\"userId\":\(q($0))}", nil) })
        let firstPages = try pipelined(client, userIds.map {
            ("GetPointHistory", "{\"userId\":\(q($0)),\"limit\":\(Self.listLimit)}", nil)
        })
        let reservations = try pipelined(client, userIds.map {
            ("ListReservations", "{\"userId\":\(q($0)),\"limit\":\(Self.listLimit)}", nil)
        })
        var liveSeat: [Int64: String] = [:]
        var confirmedSeats = Set<Int64>()
        for (i, userId) in userIds.enumerated() {
            guard let balance = field(users[i], "balance", of: userId, into: &report, as: \.int64Value) else { continue }
            if balance < 0 { report.violations.append("user \(userId): balance \(balance) below 0") }
            guard let entries = try history(userId, firstPage: firstPages[i], into: &report),
                  let list = field(reservations[i], "reservations", of: userId, into: &report, as: \.arrayValue) else { continue }
            if list.count >= Self.listLimit {
                report.violations.append("user \(userId): \(list.count) reservations, more than ListReservations shows; "
                                         + "not checked (run with more --users or a shorter --duration)")
                continue
            }
            // Points: the history, oldest first, numbered 1, 2, … with each entry's balance the
            // one before it plus its amount, ends at the balance; each reservation's points went
            // out once, its price, if it was ever paid for, and came back once, its price, if it
            // was cancelled.
            var sum: Int64 = 0
            var used: [String: [Int64]] = [:], refunded: [String: [Int64]] = [:]
            var misnumbered = false, malformed = false
            for (k, e) in entries.reversed().enumerated() {
                let amount = e["amount"]?.int64Value ?? 0
                let kind = e["kind"]?.stringValue, reservationId = e["reservationId"]?.stringValue
                // PROTOCOL.md: a positive amount whose sign the kind gives (GetPointHistory); a
                // USE or REFUND is the projection of `PointsUsed` or `PointsRefunded`, each with
                // its reservationId (section 7's wallet events; GetPointHistory's `reservationId?`
                // is for CHARGE's lack of one). An entry otherwise cannot be checked (a USE of no
                // reservation would take points no reservation accounts for, unnoticed), so it is
                // a violation, the first only.
                if !malformed, !(amount > 0) || !["CHARGE", "USE", "REFUND"].contains(kind ?? "")
                    || (kind != "CHARGE" && reservationId == nil) {
                    malformed = true
                    report.violations.append("user \(userId): history entry \(k + 1) not checked, "
                                             + "\(e["amount"].map { "amount \($0.serialized)" } ?? "no amount"), "
                                             + "kind \(e["kind"]?.serialized ?? "missing"), "
                                             + "reservationId \(e["reservationId"]?.serialized ?? "missing")")
                }
                switch kind {
                case "USE": sum -= amount; if let r = reservationId { used[r, default: []].append(amount) }
                case "REFUND": sum += amount; if let r = reservationId { refunded[r, default: []].append(amount) }
                default: sum += amount
                }
                if !misnumbered, e["n"]?.int64Value != Int64(k + 1) || e["balance"]?.int64Value != sum {
                    // The first only: one wrong entry puts every later one out of step.
                    misnumbered = true
                    report.violations.append("user \(userId): history entry \(k + 1) is n \(e["n"]?.int64Value ?? -1) with balance "
                                             + "\(e["balance"]?.int64Value ?? -1), not n \(k + 1) with \(sum)")
                }
            }
            if sum != balance { report.violations.append("user \(userId): balance \(balance) but history sums to \(sum)") }
            report.usersChecked += 1
            var seen = Set<String>()
            for r in list {
                let rid = r["reservationId"]?.stringValue ?? "?"
                seen.insert(rid)
                let status = r["status"]?.stringValue ?? ""
                let paid = status == "CONFIRMED" || status == "CANCELLED"
                // A free reservation (price 0) moves no points and has no entry.
                let price = r["price"]?.int64Value ?? -1
                let uses = used[rid, default: []], refunds = refunded[rid, default: []]
                let expected = (price != 0 && paid ? 1 : 0, price != 0 && status == "CANCELLED" ? 1 : 0)
                if (uses.count, refunds.count) != expected {
                    report.violations.append("reservation \(rid) (\(status)): \(uses.count) USE and \(refunds.count) REFUND entries "
                                             + "in the point history, not \(expected.0) and \(expected.1)")
                } else if (uses + refunds).contains(where: { $0 != price }) {
                    report.violations.append("reservation \(rid) (\(status)) costs \(price) points, but its history entries move "
                                             + "\((uses + refunds).map(String.init).joined(separator: " and "))")
                }
                guard r["scheduleId"]?.stringValue == scheduleId else { continue }
                report.statusCounts[status, default: 0] += 1
                guard status == "HELD" || status == "CONFIRMED" else { continue }
                for n in r["seatNumbers"]?.arrayValue ?? [] {
                    guard let seat = n.int64Value else {
                        report.violations.append("reservation \(rid): not checked, a seat number that is not an integer")
                        continue
                    }
                    if let other = liveSeat[seat] {
                        report.violations.append("seat \(seat): live in both \(other) and \(rid)")
                    }
                    liveSeat[seat] = rid
                    if status == "CONFIRMED" { confirmedSeats.insert(seat) }
                }
            }
            for rid in Set(used.keys).union(refunded.keys).subtracting(seen) {
                report.violations.append("user \(userId): points used or refunded for \(rid), not one of their reservations")
            }
        }
        let map = try client.call("GetSeatMap", ["scheduleId": .string(scheduleId)], timeoutMs: 30_000)
        guard let seats = field(map, "seats", of: "schedule \(scheduleId)", into: &report, as: \.arrayValue) else { return report }
        var sold = Set<Int64>()
        for seat in seats where seat["status"]?.stringValue == "SOLD" {
            guard let n = seat["number"]?.int64Value else {
                report.violations.append("schedule \(scheduleId): not checked, a SOLD seat whose number is not an integer")
                continue
            }
            sold.insert(n)
        }
        report.soldSeats = sold.count
        report.confirmedSeats = confirmedSeats.count
        if sold != confirmedSeats {
            report.violations.append("seat map has \(sold.count) SOLD seats; confirmed reservations hold \(confirmedSeats.count)"
                                     + " (\(sold.symmetricDifference(confirmedSeats).count) differ)")
        }
        return report
    }

    /// The reply's `name` field as `read` takes it (an integer, an array), or nil with a violation
    /// when the query was refused, or the field is missing or of another type: what could not be
    /// read could not be checked. (A field of another type was skipped silently: an audit.)
    private func field<T>(_ reply: Reply, _ name: String, of subject: String, into report: inout InvariantReport,
                          as read: (JSON) -> T?) -> T? {
        guard reply.ok else {
            report.violations.append("\(subject): not checked, the query was refused (\(reply.code ?? "?"))")
            return nil
        }
        guard let value = reply.body[name] else {
            report.violations.append("\(subject): not checked, the reply has no \(name)")
            return nil
        }
        guard let typed = read(value) else {
            report.violations.append("\(subject): not checked, the reply's \(name) is not of the type PROTOCOL.md gives")
            return nil
        }
        return typed
    }

    /// A user's whole point history, newest first: the first page, then pages back (`before`)
    /// while they come back full.
    private func history(_ userId: String, firstPage: Reply, into report: inout InvariantReport) throws -> [JSON]? {
        guard var page = field(firstPage, "entries", of: userId, into: &report, as: \.arrayValue) else { return nil }
        var entries = page
        while page.count == Self.listLimit, let oldest = page.last?["n"]?.int64Value, oldest > 1 {
            let reply = try client.call("GetPointHistory", ["userId": .string(userId), "limit": .int(Int64(Self.listLimit)),
                                                            "before": .int(oldest)], timeoutMs: 30_000)
            guard let next = field(reply, "entries", of: userId, into: &report, as: \.arrayValue) else { return nil }
            page = next
            entries += page
        }
        return entries
    }
}

public struct InvariantReport: Sendable {
    /// False when the server did not answer GetStats after the run, or stopped answering the
    /// check's queries: only the subscriber's expiry checks are then in `violations`.
    public var checkedThroughServer = true
    public var usersChecked = 0
    public var soldSeats = 0
    public var confirmedSeats = 0
    public var statusCounts: [String: Int] = [:]
    public var violations: [String] = []
    public var ok: Bool { violations.isEmpty }
}
