import Foundation
import GRDB
import SLAMStore
import Testing

/// The environment variable that turns this test binary into the load child (see
/// `loadChildProcess`): the database path.
let loadChildEnv = "SLAM_STORE_LOAD_CHILD_DB"

@Suite("Crash: SIGKILL under load")
struct CrashTests {
    /// Kills a load child three times on one file at a random moment each time, and after each
    /// kill checks the reopened store against everything the children reported.
    func crashRounds(executable: URL, arguments: (String) -> [String],
                     childEnv: (String) -> [String: String] = { _ in [:] }) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("load/store.sqlite")
        var reported: [ReportedCommit] = []
        for round in 1...3 {
            let killAfter = Int.random(in: 50...400)
            var env = ProcessInfo.processInfo.environment
            for (k, v) in childEnv(path) { env[k] = v }
            let run = try runAndKill(executable: executable, arguments: arguments(path), environment: env,
                                     killAfter: killAfter, stderrPath: dir.path("child-\(round).stderr"))
            if let failure = run.failure {
                Issue.record("""
                    round \(round): \(failure)
                    command: \(executable.path) \(arguments(path).joined(separator: " "))
                    stderr (end): \(run.stderr.suffix(2000))
                    """)
                return
            }
            #expect(run.reported.count >= killAfter)
            if let first = run.reported.first, let previous = reported.last {
                // At least one more than the last report: a commit can land between the kill and its print.
                #expect(first.txn > previous.txn,
                        "round \(round) must resume numbering after txn \(previous.txn), started at \(first.txn)")
            }
            reported += run.reported
            do {
                let store = try EventStore.open(path: path)
                let problems = try loadProblems(store, reported: reported)
                #expect(problems.isEmpty, """
                    round \(round), killed after \(run.reported.count) reported commits: \(problems.count) problems:
                    \(problems.prefix(20).joined(separator: "\n"))
                    """)
                if !problems.isEmpty { return }
                let heads = try store.pool.read { db in try EventStore.heads(db) }
                #expect(heads.position >= reported.last!.lastPosition)
            }
        }
    }

    @Test("every commit `slam debug-append-load` reported survives SIGKILL, and no transaction is partial")
    func slamChild() throws {
        guard let slam = locateSlam() else {
            let bin = ProcessInfo.processInfo.environment["SLAM_BIN"] ?? ""
            let message: String
            if bin.isEmpty {
                message = "cannot find the `slam` executable: build it (`swift build` puts it next to the test binary) "
                    + "or set SLAM_BIN; looked upwards from \(CommandLine.arguments[0])"
            } else {
                message = "SLAM_BIN=\(bin) is not an executable file"
            }
            Issue.record(Comment(rawValue: message))
            return
        }
        try crashRounds(executable: slam) { path in
            ["debug-append-load", "--db", path, "--transactions", "1000000"]
        }
    }

    @Test("the same, with this test binary as the child appending through the store API")
    func selfHostedChild() throws {
        let me = FileManager.default.fileExists(atPath: "/proc/self/exe")
            ? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            : URL(fileURLWithPath: CommandLine.arguments[0])
        try crashRounds(executable: me, arguments: { _ in
            ["--testing-library", "swift-testing", "--filter", "loadChildProcess"]
        }, childEnv: { path in [loadChildEnv: path] })
    }

    /// Not a test on its own: the child of `selfHostedChild`, run only in a process started with
    /// `SLAM_STORE_LOAD_CHILD_DB`. It appends until killed.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[loadChildEnv] != nil))
    func loadChildProcess() throws {
        let path = ProcessInfo.processInfo.environment[loadChildEnv]!
        try runLoad(path: path, transactions: 1_000_000) { commit in
            writeLineUnbuffered("committed \(commit.txn) \(commit.lastPosition)")
        }
    }
}

/// The checker must not pass a broken store: each kind of damage it exists to find is found.
@Suite("The crash checker")
struct LoadCheckerTests {
    func loadedStore(_ dir: TemporaryDirectory, transactions: Int64) throws -> (EventStore, [ReportedCommit]) {
        let path = dir.path("store.sqlite")
        var reported: [ReportedCommit] = []
        try runLoad(path: path, transactions: transactions) { reported.append($0) }
        // A restart resumes the numbering.
        try runLoad(path: path, transactions: transactions) { reported.append($0) }
        return (try EventStore.open(path: path), reported)
    }

    @Test("a store the load wrote whole passes")
    func wholeStorePasses() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (store, reported) = try loadedStore(dir, transactions: 20)
        #expect(reported.map(\.txn) == Array(1...40))
        #expect(try loadProblems(store, reported: reported) == [])
        // Reporting fewer than were committed is fine: the kill can land between commit and print.
        #expect(try loadProblems(store, reported: Array(reported.prefix(30))) == [])
    }

    @Test("a partial last transaction is found")
    func partialTransaction() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (store, reported) = try loadedStore(dir, transactions: 5)
        try store.pool.write { db in
            try db.execute(sql: "DELETE FROM events WHERE position = (SELECT MAX(position) FROM events)")
        }
        let problems = try loadProblems(store, reported: Array(reported.dropLast()))
        #expect(problems.contains { $0.contains("txn 10 is partial") || $0.contains("txn 10 has") }, "\(problems)")
    }

    @Test("a reported transaction that is missing is found")
    func missingReported() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (store, reported) = try loadedStore(dir, transactions: 5)
        let problems = try loadProblems(store, reported: reported + [ReportedCommit(txn: 11, lastPosition: 999)])
        #expect(problems == ["reported txn 11 is missing"])
        let wrongEnd = try loadProblems(store, reported: [ReportedCommit(txn: 3, lastPosition: 1)])
        #expect(wrongEnd.count == 1)
    }

    @Test("a gap in positions or categorySeqs is found")
    func gaps() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (store, reported) = try loadedStore(dir, transactions: 5)
        try store.pool.write { db in try db.execute(sql: "UPDATE events SET category_seq = category_seq + 100 WHERE position = 3") }
        #expect(try loadProblems(store, reported: reported).contains { $0.contains("categorySeq 103 at seq 3, expected 3") })
        try store.pool.write { db in try db.execute(sql: "DELETE FROM events WHERE position IN (SELECT position FROM events WHERE stream_id = 'load-a-2')") }
        let problems = try loadProblems(store, reported: reported)
        #expect(problems.contains { $0.contains("positions have a gap") })
        #expect(problems.contains { $0.contains("txn 2 is partial") })
    }

    @Test("commit lines are parsed strictly")
    func parsing() {
        #expect(parseCommitLine("committed 12 345") == ReportedCommit(txn: 12, lastPosition: 345))
        #expect(parseCommitLine("committed 12") == nil)
        #expect(parseCommitLine("committed 12 34x") == nil)
        #expect(parseCommitLine("◇ Test started.") == nil)
    }
}
