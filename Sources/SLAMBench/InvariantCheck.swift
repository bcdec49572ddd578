import SLAMClient
import SLAMJSON

/// DESIGN.md section 2's invariants, checked through the server's queries after a run: no seat
/// sold twice or held by two live reservations, every balance equal to its history, no balance
/// below 0, and the seat map's sold seats exactly the confirmed reservations' seats.
struct InvariantCheck {
    let client: SLAMClient
    let scheduleId: String
    let userIds: [String]

    func run() throws -> InvariantReport {
        var report = InvariantReport()
        let users = try pipelined(client, userIds.map { ("GetUser", "{\"userId\":\(q($0))}", nil) })
        let histories = try pipelined(client, userIds.map { ("GetPointHistory", "{\"userId\":\(q($0)),\"limit\":1000}", nil) })
        let reservations = try pipelined(client, userIds.map { ("ListReservations", "{\"userId\":\(q($0)),\"limit\":1000}", nil) })
        var liveSeat: [Int64: String] = [:]
        var confirmedSeats = Set<Int64>()
        for (i, userId) in userIds.enumerated() {
            let balance = users[i].body["balance"]?.int64Value ?? -1
            if balance < 0 { report.violations.append("user \(userId): balance \(balance) below 0") }
            var sum: Int64 = 0
            for e in histories[i].body["entries"]?.arrayValue ?? [] {
                let amount = e["amount"]?.int64Value ?? 0
                sum += e["kind"]?.stringValue == "USE" ? -amount : amount
            }
            if sum != balance { report.violations.append("user \(userId): balance \(balance) but history sums to \(sum)") }
            report.usersChecked += 1
            for r in reservations[i].body["reservations"]?.arrayValue ?? [] {
                guard r["scheduleId"]?.stringValue == scheduleId else { continue }
                let status = r["status"]?.stringValue ?? ""
                report.statusCounts[status, default: 0] += 1
                guard status == "HELD" || status == "CONFIRMED" else { continue }
                let rid = r["reservationId"]?.stringValue ?? "?"
                for n in r["seatNumbers"]?.arrayValue ?? [] {
                    guard let seat = n.int64Value else { continue }
                    if let other = liveSeat[seat] {
                        report.violations.append("seat \(seat): live in both \(other) and \(rid)")
                    }
                    liveSeat[seat] = rid
                    if status == "CONFIRMED" { confirmedSeats.insert(seat) }
                }
            }
        }
        let map = try client.call("GetSeatMap", ["scheduleId": .string(scheduleId)], timeoutMs: 30_000)
        var sold = Set<Int64>()
        for seat in map.body["seats"]?.arrayValue ?? [] where seat["status"]?.stringValue == "SOLD" {
            if let n = seat["number"]?.int64Value { sold.insert(n) }
        }
        report.soldSeats = sold.count
        report.confirmedSeats = confirmedSeats.count
        if sold != confirmedSeats {
            report.violations.append("seat map has \(sold.count) SOLD seats; confirmed reservations hold \(confirmedSeats.count)"
                                     + " (\(sold.symmetricDifference(confirmedSeats).count) differ)")
        }
        return report
    }
}

public struct InvariantReport: Sendable {
    public var usersChecked = 0
    public var soldSeats = 0
    public var confirmedSeats = 0
    public var statusCounts: [String: Int] = [:]
    public var violations: [String] = []
    public var ok: Bool { violations.isEmpty }
}
