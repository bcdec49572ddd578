import Foundation
import GRDB
import SLAMDomain
import SLAMProjections
import SLAMStore
import Testing

@Suite("slam verify")
struct VerifyTests {
    /// The violations of `check` whose message contains every one of `words`.
    private func matching(_ report: VerifyReport, _ check: String, _ words: [String]) -> [Violation] {
        report.violations.filter { v in v.check == check && words.allSatisfy { v.message.contains($0) } }
    }

    @Test("passes on a healthy store")
    func healthy() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let report = try Verifier.run(path: copy)
        #expect(report.ok, "\(report.violations)")
        #expect(report.events == (try scalar(copy, "SELECT MAX(position) FROM events") ?? -1))
        #expect(report.rows["seats"] == 10 + 2 + 5)
        #expect(report.rows.values.reduce(0, +) > 50)
    }

    /// It said OK of one, judging its schema by this build's (audit); `serve` and `rebuild` refuse it.
    @Test("refuses a store a newer SLAM has migrated, as the server and the rebuild do")
    func newerStore() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let queue = try DatabaseQueue(path: copy)
        try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('9999_from_the_future')") }
        try queue.close()
        #expect {
            _ = try Verifier.run(path: copy)
        } throws: { error in
            (error as? StoreError)?.code == .badDatabase && "\(error)".contains("9999_from_the_future")
        }
    }

    @Test("a doubled seat: two live reservations on one seat, though the read models match the log")
    func doubledSeat() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        // A buggy writer holds seat 1, which user a's confirmed reservation owns, for user b.
        let ref = ReservationRef(reservationId: "res_DOUBLED", userId: f.users["b"]!, scheduleId: f.schedule,
                                 seatNumbers: [1], price: 5_000)
        let at = f.start + 10_000_000
        try appendInline(copy, [.seatsHeld(ref, expiresAt: at + 60_000)], at: at)
        let report = try Verifier.run(path: copy)
        #expect(!report.ok)
        // Found in the log (the hold took a seat a live reservation had) and in the read model.
        #expect(!matching(report, "doubled-seat", ["seat 1 ", f.schedule, "res_DOUBLED", f.confirmed, "CONFIRMED"]).isEmpty,
                "\(report.violations)")
        #expect(!matching(report, "doubled-seat", ["seat 1 of schedule \(f.schedule) has two live reservations",
                                                   "res_DOUBLED (HELD)", "\(f.confirmed) (CONFIRMED)"]).isEmpty)
        // The read models are what the log says: no projection violation.
        #expect(report.violations.allSatisfy { !$0.check.hasPrefix("projection") }, "\(report.violations)")
    }

    @Test("an edited balance")
    func editedBalance() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let a = f.users["a"]!
        let balance: Int64 = try #require(try scalar(copy, "SELECT balance FROM users WHERE user_id = ?", [a]))
        try execute(copy, "UPDATE users SET balance = balance + 7 WHERE user_id = ?", [a])
        let report = try Verifier.run(path: copy)
        #expect(!report.ok)
        #expect(!matching(report, "projection-different", ["users row user_id='\(a)'", "balance is \(balance + 7)",
                                                           "the log gives \(balance)"]).isEmpty, "\(report.violations)")
        #expect(!matching(report, "balance-history", [a, "balance \(balance + 7)", "is \(balance)"]).isEmpty)
        #expect(report.counts.keys.sorted() == ["balance-history", "projection-different"])
        // A rebuild repairs it.
        _ = try Rebuild.run(path: copy)
        #expect(try Verifier.run(path: copy).ok)
    }

    @Test("a reservation confirmed twice, and a release of seats its reservation does not hold")
    func impossibleReservationEvents() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let a = f.users["a"]!
        let confirmedRef = ReservationRef(reservationId: f.confirmed, userId: a, scheduleId: f.schedule, seatNumbers: [1, 2],
                                          price: f.confirmedPrice)
        // A ghost release frees seat 1, which a's confirmed reservation holds: the seat map would
        // offer it again.
        let ghost = ReservationRef(reservationId: "res_GHOST", userId: a, scheduleId: f.schedule, seatNumbers: [1], price: 0)
        let at = f.start + 10_000_000
        try appendInline(copy, [.reservationConfirmed(confirmedRef), .holdReleased(ghost)], at: at)
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "reservation-lifecycle", ["ReservationConfirmed", f.confirmed, "which is CONFIRMED"]).isEmpty,
                "\(report.violations)")
        #expect(!matching(report, "reservation-lifecycle", ["HoldReleased", "res_GHOST", "never held"]).isEmpty)
        #expect(!matching(report, "doubled-seat", ["HoldReleased", "frees seat 1 ", "res_GHOST", "which does not hold it",
                                                   f.confirmed]).isEmpty)
        // The read models, what the log gives, disagree among themselves.
        #expect(!matching(report, "seat-owner", ["reservation \(f.confirmed) (CONFIRMED) holds seat 1", "AVAILABLE"]).isEmpty)
        #expect(report.violations.allSatisfy { !$0.check.hasPrefix("projection") }, "\(report.violations)")
    }

    @Test("points refunded to someone else than the reservation's owner")
    func refundToAnotherUser() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let b = f.users["b"]!
        let balance: Int64 = try #require(try scalar(copy, "SELECT balance FROM users WHERE user_id = ?", [b]))
        try appendInline(copy, [.pointsRefunded(userId: b, amount: 100, balance: balance + 100, reservationId: f.confirmed)],
                         at: f.start + 10_000_000)
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "points-refunded", ["PointsRefunded", "refunds user \(b) for reservation \(f.confirmed)",
                                                      "of user \(f.users["a"]!)"]).isEmpty, "\(report.violations)")
    }

    @Test("a payment after the hold's end, and an expiry before it")
    func lateConfirmationAndEarlyExpiry() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let b = f.users["b"]!
        // Free seats (price 0), so no points move and only the times are wrong.
        let late = ReservationRef(reservationId: "res_LATE", userId: b, scheduleId: f.schedule, seatNumbers: [9], price: 0)
        let early = ReservationRef(reservationId: "res_EARLY", userId: b, scheduleId: f.schedule, seatNumbers: [10], price: 0)
        let at = f.start + 10_000_000
        try appendInline(copy, [.seatsHeld(late, expiresAt: at + 1_000), .seatsHeld(early, expiresAt: at + 60_000)], at: at)
        try appendInline(copy, [.reservationConfirmed(late), .holdExpired(early)], at: at + 5_000)
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "reservation-lifecycle", ["res_LATE confirmed at", "after its hold expired"]).isEmpty,
                "\(report.violations)")
        #expect(!matching(report, "reservation-lifecycle", ["res_EARLY expired at", "before its hold's end"]).isEmpty)
        #expect(report.counts.keys.sorted() == ["reservation-lifecycle"], "\(report.violations)")
    }

    @Test("read models that disagree among themselves, meta past the head, and records that do not match the log")
    func crossChecks() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let head: Int64 = try #require(try scalar(copy, "SELECT MAX(position) FROM events"))
        // The key of an accepted command with an event, its record made to point at the next
        // event, another command's.
        let key: String = try #require(try scalar(copy, """
            SELECT i.key FROM idempotency i JOIN events e ON e.position = i.position AND e.causation_id = i.key
            JOIN events n ON n.position = i.position + 1 AND n.causation_id IS NOT i.key
            WHERE i.ok = 1 ORDER BY i.position LIMIT 1
            """))
        try execute(copy, """
            UPDATE queues SET waiting = waiting + 1;
            UPDATE schedules SET sold = sold + 1 WHERE schedule_id = ?;
            UPDATE meta SET value = ? WHERE key = 'publishedSeq';
            UPDATE idempotency SET position = position + 1 WHERE key = ?;
            """, [f.schedule, String(head + 1), key])
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "queue-counts", ["counts", "its tokens"]).isEmpty, "\(report.violations)")
        #expect(!matching(report, "schedule-counts", ["schedule \(f.schedule) counts"]).isEmpty)
        #expect(!matching(report, "meta", ["publishedSeq is \(head + 1)", "the head, \(head)"]).isEmpty)
        #expect(!matching(report, "idempotency", ["caused by key \(key)", "an event of"]).isEmpty)
        // Pointing before its last event (as when a command ran again after it was recorded).
        try execute(copy, "UPDATE idempotency SET position = position - 2 WHERE key = ?", [key])
        #expect(!matching(try Verifier.run(path: copy), "idempotency", ["caused by key \(key)", "before it"]).isEmpty)
        // A record outside the log.
        try execute(copy, "UPDATE idempotency SET position = ? WHERE key = ?", [head + 5, key])
        #expect(!matching(try Verifier.run(path: copy), "idempotency", ["key \(key) names position \(head + 5), outside the log"])
            .isEmpty)
    }

    @Test("GetStats' kept counts against the tables: a schedule's reservations, and the users")
    func keptCounts() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let held: Int64 = try #require(try scalar(copy, "SELECT COUNT(*) FROM reservations WHERE schedule_id = ?", [f.schedule]))
        try execute(copy, """
            UPDATE schedules SET reservations = reservations + 1 WHERE schedule_id = ?;
            UPDATE user_count SET users = users + 2;
            """, [f.schedule])
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "schedule-counts", ["schedule \(f.schedule) counts \(held + 1) reservations held on it",
                                                      "the reservations table has \(held)"]).isEmpty, "\(report.violations)")
        #expect(!matching(report, "user-count", ["user_count says 7 (1 rows)", "there are 5 users"]).isEmpty)
        #expect(!matching(report, "projection-different", ["schedules row", "reservations is \(held + 1)"]).isEmpty)
        #expect(!matching(report, "projection-different", ["user_count row id=1", "users is 7, the log gives 5"]).isEmpty)
        // The row gone: the users are counted nowhere.
        try execute(copy, "DELETE FROM user_count")
        let gone = try Verifier.run(path: copy)
        #expect(!matching(gone, "user-count", ["user_count says nothing (0 rows)", "there are 5 users"]).isEmpty,
                "\(gone.violations)")
        #expect(!matching(gone, "projection-missing", ["user_count row id=1 is missing"]).isEmpty)
    }

    @Test("a key executed twice within the retention (its record lost, the command sent again), but not a key used again after it")
    func keyExecutedTwice() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        // A RegisterUser's key, and when it ran.
        let row = try #require(try GRDB.DatabaseQueue(path: copy).read { db in
            try Row.fetchOne(db, sql: """
                SELECT e.causation_id, e.occurred_at FROM events e JOIN idempotency i ON i.key = e.causation_id
                WHERE e.type = 'UserRegistered' ORDER BY e.position LIMIT 1
                """)
        })
        let key: String = row[0], at: Millis = row[1]
        #expect(try Verifier.run(path: copy).ok)
        // An hour later the record is gone and the command runs again: a second user.
        try execute(copy, "DELETE FROM idempotency WHERE key = ?", [key])
        try appendInline(copy, [.userRegistered(userId: "usr_AGAIN", name: "again")], at: at + 3_600_000, causation: key)
        let twice = matching(try Verifier.run(path: copy), "idempotency", ["key \(key) was executed more than once"])
        #expect(twice.count == 1, "\(twice)")
        // Past the retention the record is pruned and the key may name a new command: no
        // violation for that.
        let later = try f.copy()
        defer { remove(later) }
        try execute(later, "DELETE FROM idempotency WHERE key = ?", [key])
        try appendInline(later, [.userRegistered(userId: "usr_LATER", name: "later")], at: at + 25 * 3_600_000, causation: key)
        #expect(matching(try Verifier.run(path: later), "idempotency", ["key \(key)"]).isEmpty)
        // That new command executed twice in turn, an hour apart: found, the use a day before
        // notwithstanding.
        try appendInline(later, [.userRegistered(userId: "usr_LATER2", name: "later again")], at: at + 26 * 3_600_000,
                         causation: key)
        let again = matching(try Verifier.run(path: later), "idempotency", ["key \(key) was executed more than once"])
        #expect(again.count == 1, "\(again)")
    }

    @Test("a token admitted from behind one still waiting, and two live tokens of one user")
    func queueOrder() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        // The fixture's queue, with three tokens of user d added after its last: one waiting, one
        // admitted (and expired) from behind it, and a second live one.
        let d = f.users["d"]!
        let schedule: String = try #require(try scalar(copy, "SELECT schedule_id FROM queues LIMIT 1"))
        let last: Int64 = try #require(try scalar(copy, "SELECT MAX(wait_seq) FROM queue_tokens WHERE schedule_id = ?", [schedule]))
        try execute(copy, """
            INSERT INTO queue_tokens (token_id, schedule_id, user_id, status, wait_seq, left_waiting, joined_at, active_until)
            VALUES ('tok_WAITS', ?1, ?2, 'WAITING', ?3 + 1, 0, 0, NULL), ('tok_JUMPED', ?1, ?2, 'EXPIRED', ?3 + 2, 0, 0, 1),
                   ('tok_SECOND', ?1, ?2, 'WAITING', ?3 + 3, 0, 0, NULL)
            """, [schedule, d, last])
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "queue-order", ["schedule \(schedule) admitted its token \(last + 2) while token \(last + 1)",
                                                  "still waits"]).isEmpty, "\(report.violations)")
        #expect(!matching(report, "queue-order", ["user \(d) has more than one live token", "tok_WAITS", "tok_SECOND"]).isEmpty)
    }

    @Test("categorySeq out of position order, a stream version skipped, and a missing read-model table")
    func orderAndMissingTable() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        // Two events of one category swap their categorySeqs (the set stays 1...n).
        let category: String = try #require(try scalar(copy, """
            SELECT category FROM events GROUP BY category HAVING COUNT(*) >= 2 ORDER BY category LIMIT 1
            """))
        try execute(copy, """
            UPDATE events SET category_seq = -category_seq WHERE category = ? AND category_seq IN (1, 2);
            UPDATE events SET category_seq = CASE category_seq WHEN -1 THEN 2 ELSE 1 END WHERE category = ? AND category_seq < 0;
            """, [category, category])
        // The last event of a stream with two or more skips a version.
        let stream: String = try #require(try scalar(copy, "SELECT stream_id FROM events GROUP BY stream_id HAVING COUNT(*) >= 2 LIMIT 1"))
        try execute(copy, "UPDATE events SET stream_version = stream_version + 1 WHERE stream_id = ? AND stream_version = "
                    + "(SELECT MAX(stream_version) FROM events WHERE stream_id = ?)", [stream, stream])
        try execute(copy, "DROP TABLE reservations")
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "outbox-order", ["category \(category)", "categorySeq 2"]).isEmpty, "\(report.violations)")
        #expect(!matching(report, "stream-version", ["stream \(stream)"]).isEmpty)
        // Reported, not thrown (it would be exit 2, "cannot be read", and the list lost).
        #expect(!matching(report, "projection-missing", ["reservations does not exist"]).isEmpty)
    }

    @Test("a hole in a category's categorySeq")
    func categorySeqHole() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let category: String = try #require(try scalar(copy, "SELECT category FROM events WHERE position = 5"))
        try execute(copy, "UPDATE events SET category_seq = category_seq + 1000 WHERE position = 5")
        let report = try Verifier.run(path: copy)
        #expect(!report.ok)
        #expect(!matching(report, "outbox-gap", ["outbox category \(category) has", "categorySeq must run"]).isEmpty,
                "\(report.violations)")
        #expect(report.violations.allSatisfy { $0.check.hasPrefix("outbox") }, "\(report.violations)")
    }

    @Test("a changed projection row, a missing one and an extra one")
    func changedProjectionRows() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        try execute(copy, "UPDATE seats SET status = 'AVAILABLE', reservation_id = NULL WHERE schedule_id = ? AND number = 2",
                    [f.schedule])
        try execute(copy, "DELETE FROM point_history WHERE user_id = ? AND n = 1", [f.users["e"]!])
        try execute(copy, "INSERT INTO queues (schedule_id, waits, front_removed, active, waiting) VALUES ('sch_BOGUS', 1, 0, 0, 1)")
        let report = try Verifier.run(path: copy)
        #expect(!report.ok)
        #expect(!matching(report, "projection-different", ["seats row schedule_id='\(f.schedule)' number=2",
                                                           "status is 'AVAILABLE', the log gives 'SOLD'",
                                                           "reservation_id is NULL, the log gives '\(f.confirmed)'"]).isEmpty,
                "\(report.violations)")
        #expect(!matching(report, "projection-missing", ["point_history row user_id='\(f.users["e"]!)' n=1"]).isEmpty)
        #expect(!matching(report, "projection-extra", ["queues row schedule_id='sch_BOGUS'"]).isEmpty)
    }

    @Test("a second deduction for one payment, and a charge above the limit, in the log")
    func paymentAndChargeInvariants() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let a = f.users["a"]!, e = f.users["e"]!
        let balanceA: Int64 = try #require(try scalar(copy, "SELECT balance FROM users WHERE user_id = ?", [a]))
        let balanceE: Int64 = try #require(try scalar(copy, "SELECT balance FROM users WHERE user_id = ?", [e]))
        let at = f.start + 10_000_000
        try appendInline(copy, [
            .pointsUsed(userId: a, amount: f.confirmedPrice, balance: balanceA - f.confirmedPrice, reservationId: f.confirmed),
            .pointsCharged(userId: e, amount: 1_000_000 - balanceE + 5, balance: 1_000_005),
        ], at: at)
        let report = try Verifier.run(path: copy)
        #expect(!report.ok)
        #expect(!matching(report, "points-used", [f.confirmed, "2 PointsUsed events", "expected exactly one"]).isEmpty,
                "\(report.violations)")
        #expect(!matching(report, "charge-over-limit", [e, "1000005"]).isEmpty)
        #expect(report.violations.allSatisfy { !$0.check.hasPrefix("projection") })
    }

    @Test("a negative balance, an event in another category, an undecodable event and a refund without cancellation")
    func otherCorruptions() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let d = f.users["d"]!
        try execute(copy, "UPDATE users SET balance = -5 WHERE user_id = ?", [d])
        let type: String = try #require(try scalar(copy, "SELECT type FROM events WHERE position = 7"))
        try execute(copy, "UPDATE events SET category = 'bogus' WHERE position = 7")
        try execute(copy, "UPDATE events SET body = '{\"userId\": 5}' WHERE position = 3")
        let balance: Int64 = try #require(try scalar(copy, "SELECT balance FROM users WHERE user_id = ?", [f.users["e"]!]))
        try appendInline(copy, [.pointsRefunded(userId: f.users["e"]!, amount: 1, balance: balance + 1, reservationId: f.confirmed)],
                         at: f.start + 10_000_000)
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "negative-balance", ["user \(d) has balance -5"]).isEmpty, "\(report.violations)")
        #expect(!matching(report, "outbox-mismatch", ["\(type) events are in category bogus", "position 7"]).isEmpty)
        #expect(!matching(report, "undecodable-event", ["event at position 3"]).isEmpty)
        #expect(!matching(report, "points-refunded", [f.confirmed, "no refunded cancellation"]).isEmpty)
    }

    @Test("a hole in the log's positions")
    func positionGap() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let type: String = try #require(try scalar(copy, "SELECT type FROM events WHERE position = 2"))
        #expect(type == "PointsCharged")
        try execute(copy, "DELETE FROM events WHERE position = 2")
        let report = try Verifier.run(path: copy)
        #expect(!matching(report, "position-gap", ["event position 2 is missing"]).isEmpty, "\(report.violations)")
    }

    @Test("runs beside a live server, on one snapshot")
    func besideAServer() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let harness = try LiveServer(path: copy)
        defer { harness.stop() }
        let s = harness.scenario
        _ = try s.registerUser("during", charge: 1_000)
        let report = try Verifier.run(path: copy)
        #expect(report.ok, "\(report.violations)")
    }
}
