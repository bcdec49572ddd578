import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMProjections
import SLAMServer
import SLAMStore
import Testing

/// GetStats' `users` and `reservations` are kept as commands change them (migration 0006), not
/// counted over the tables, which read them whole.
@Suite("The counts GetStats reports")
struct CountsTests {
    /// GetStats as a reader answers it on `path`.
    private func stats(_ path: String) throws -> JSON {
        let queue = try openQueue(path)
        defer { try? queue.close() }
        let bytes = try queue.read { db in try Queries.getStats(db, storeId: "sto_test") }
        return try JSONParser.parse(bytes)
    }

    /// The tables' own counts, and every schedule's reservations as the reservations table has them.
    private func counted(_ path: String) throws -> (users: Int64, reservations: Int64, bySchedule: [String: Int64]) {
        let queue = try openQueue(path)
        defer { try? queue.close() }
        return try queue.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT schedule_id, COUNT(*) FROM reservations GROUP BY schedule_id")
            return (try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM users")!,
                    try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM reservations")!,
                    Dictionary(uniqueKeysWithValues: rows.map { ($0[0] as String, $0[1] as Int64) }))
        }
    }

    private func kept(_ path: String) throws -> [String: Int64] {
        let queue = try openQueue(path)
        defer { try? queue.close() }
        return try queue.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT schedule_id, reservations FROM schedules")
                .map { ($0[0] as String, $0[1] as Int64) })
        }
    }

    @Test("the commands keep them: GetStats gives the tables' counts, each schedule its own reservations")
    func keptByCommands() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let tables = try counted(copy)
        #expect(tables.users == 5 && tables.reservations > 3)
        let s = try stats(copy)
        #expect(s["users"]?.int64Value == tables.users && s["reservations"]?.int64Value == tables.reservations, "\(s)")
        #expect(try kept(copy).filter { $0.value != 0 } == tables.bySchedule)
        // GetStats reads the kept counts, not the tables.
        try execute(copy, """
            UPDATE user_count SET users = 42;
            UPDATE schedules SET reservations = reservations + 100 WHERE schedule_id = ?;
            """, [f.schedule])
        let edited = try stats(copy)
        #expect(edited["users"]?.int64Value == 42 && edited["reservations"]?.int64Value == tables.reservations + 100)
    }

    /// Takes a store back to before migration 0006.
    private func unmigrate(_ path: String) throws {
        try execute(path, """
            ALTER TABLE schedules DROP COLUMN reservations;
            DROP TABLE user_count;
            DELETE FROM grdb_migrations WHERE identifier = '0006_counts_kept';
            """)
        #expect(try scalar(path, "SELECT COUNT(*) FROM pragma_table_info('schedules') WHERE name = 'reservations'") == 0)
    }

    /// Opens the store as `slam serve` and the rebuild do, which migrates it.
    private func migrate(_ path: String) throws {
        let store = try EventStore.open(path: path, sync: .full, migrations: Projector.migrations, readers: 1)
        try store.pool.close()
    }

    @Test("migration 0006 counts what an older store holds, and verify then passes")
    func migratesAnOlderStore() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let tables = try counted(copy)
        try unmigrate(copy)
        #expect {
            _ = try Verifier.run(path: copy)
        } throws: { error in
            (error as? StoreError)?.code == .badDatabase && "\(error)".contains("0006_counts_kept")
                && "\(error)".contains("older format")
        }
        try migrate(copy)
        let s = try stats(copy)
        #expect(s["users"]?.int64Value == tables.users && s["reservations"]?.int64Value == tables.reservations, "\(s)")
        #expect(try kept(copy).filter { $0.value != 0 } == tables.bySchedule)
        let report = try Verifier.run(path: copy)
        #expect(report.ok, "\(report.violations)")
    }

    /// Migration 0006 reads those tables: a store of an older format with one dropped by hand
    /// could not be opened, so a rebuild could not make it again, as it does on a current store.
    @Test("an older store with a read-model table dropped: opening it migrates it, and a rebuild makes the table again")
    func olderStoreWithADroppedTable() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let before = try dumpProjections(copy)
        try unmigrate(copy)
        try execute(copy, "DROP TABLE schedules; DROP TABLE reservations")
        do {
            _ = try Server(config: serverConfig(for: copy))
            Issue.record("a server started on a store without its schedules and reservations tables")
        } catch let error as ServerConfigError {
            // Migrated, the tables are there, empty, without their indexes: still refused.
            #expect(error.description.contains("lacks read-model"), "\(error)")
            #expect(error.description.contains("slam projections rebuild"))
        }
        _ = try Rebuild.run(path: copy)
        #expect(try dumpProjections(copy) == before)
        #expect(try Verifier.run(path: copy).ok)
    }

    /// Only a hand-made log can hold seats of a schedule before it is scheduled (HoldSeats refuses
    /// an unknown schedule); the projection then counts the hold nowhere, and so must the
    /// migration and verify.
    @Test("a hold logged before its schedule is counted nowhere: by the projection, the migration and verify alike")
    func holdBeforeItsSchedule() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let at = f.start + 10_000_000
        let early = ReservationRef(reservationId: "res_EARLY", userId: f.users["b"]!, scheduleId: "sch_LATER",
                                   seatNumbers: [1], price: 0)
        let later = ScheduleDefinition(scheduleId: "sch_LATER", concertId: "con_LATER", startsAt: at + 86_400_000,
                                       reservationOpensAt: at - 1, reservationClosesAt: at + 3_600_000,
                                       sections: [Section(name: "A", seatCount: 2, price: 0)], maxSeatsPerUser: 2, queue: nil)
        try appendInline(copy, [.seatsHeld(early, expiresAt: at + 60_000), .concertScheduled(later)], at: at)
        func check(_ when: String) throws {
            #expect(try kept(copy)["sch_LATER"] == 0, "\(when)")
            let report = try Verifier.run(path: copy)
            #expect(report.violations.allSatisfy { $0.check != "schedule-counts" && !$0.check.hasPrefix("projection") },
                    "\(when): \(report.violations)")
        }
        try check("inline")
        try unmigrate(copy)
        try migrate(copy)
        try check("migrated")
    }

    /// `slam debug-append-load` opens a store with the store's own migrations; it took a served
    /// store, whose newest migration is the read models' 0006, for a newer SLAM's.
    @Test("every migration of the build is known to the store's newer-store check, whoever opens the store")
    func buildMigrationIds() throws {
        #expect(EventStore.buildMigrationIds.sorted() == (EventStore.migrations + Projector.migrations).map(\.id).sorted())
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let store = try EventStore.open(path: copy, sync: .full)
        try store.pool.close()
        try execute(copy, "INSERT INTO grdb_migrations VALUES ('0007_from_the_future')")
        #expect {
            _ = try EventStore.open(path: copy, sync: .full)
        } throws: { error in
            "\(error)".contains("newer SLAM") && "\(error)".contains("0007_from_the_future")
                && "\(error)".contains("knows up to 0006_counts_kept")
        }
    }

    @Test("a store without users has no user_count row, GetStats says 0, and a stray row is a violation a rebuild deletes")
    func noUsers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-counts-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("slam.sqlite").path
        defer { remove(path) }
        let store = try EventStore.open(path: path, sync: .full, migrations: Projector.migrations, readers: 1)
        try store.pool.close()
        #expect(try scalar(path, "SELECT COUNT(*) FROM user_count") == 0)
        let s = try stats(path)
        #expect(s["users"]?.int64Value == 0 && s["reservations"]?.int64Value == 0, "\(s)")
        #expect(try Verifier.run(path: path).ok)
        try execute(path, "INSERT INTO user_count (id, users) VALUES (1, 3)")
        let stray = try Verifier.run(path: path)
        #expect(stray.violations.contains { $0.check == "user-count" && $0.message.contains("says 3 (1 rows)") },
                "\(stray.violations)")
        #expect(stray.violations.contains { $0.check == "projection-extra" && $0.message.contains("user_count row id=1") })
        let rebuilt = try Rebuild.run(path: path)
        #expect(rebuilt.tables.first { $0.table == "user_count" }.map { $0.deleted } == 1)
        #expect(try scalar(path, "SELECT COUNT(*) FROM user_count") == 0)
        #expect(try Verifier.run(path: path).ok)
    }
}
