import Foundation
import SLAMTesting
import GRDB
import SLAMJSON
import SLAMStore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The crash test's two halves: a child that appends under load and reports each commit on
// stdout as `committed K LASTPOSITION`, and a checker that reopens the store after the child was
// killed and compares it with what was reported.
//
// The load: transaction K appends to `load-a-K` then `load-b-K`, 1-3 events each, of type
// `LoadTest` in category `load`, every body `{"txn":K,"count":C}` with C the transaction's total.
// Transactions run one after another and K continues after a restart (the child resumes after the
// highest K in the store), so the transactions in a store are always 1...max.

/// One `committed K LASTPOSITION` line.
struct ReportedCommit: Equatable {
    var txn: Int64
    var lastPosition: Int64
}

/// Parses a child's stdout line; anything else (a test runner's chatter) is nil.
func parseCommitLine(_ line: Substring) -> ReportedCommit? {
    let parts = line.split(separator: " ")
    guard parts.count == 3, parts[0] == "committed", let k = Int64(parts[1]), let p = Int64(parts[2]) else { return nil }
    return ReportedCommit(txn: k, lastPosition: p)
}

/// Everything wrong with a store the load wrote, given every commit the child(ren) reported.
func loadProblems(_ store: EventStore, reported: [ReportedCommit]) throws -> [String] {
    var problems = try storeProblems(store)
    struct Txn { var count: Int64; var aPositions: [Int64] = []; var bPositions: [Int64] = [] }
    var txns: [Int64: Txn] = [:]
    for e in try allEvents(store) {
        let at = "event at position \(e.position) (\(e.streamId))"
        guard e.type == "LoadTest" else { problems.append("\(at): type \(e.type)"); continue }
        guard let body = try? JSONParser.parse(e.body), let k = body["txn"]?.int64Value, let c = body["count"]?.int64Value,
              body.objectValue?.count == 2 else {
            problems.append("\(at): body \(e.body)"); continue
        }
        var txn = txns[k] ?? Txn(count: c)
        if txn.count != c { problems.append("\(at): count \(c), other events of txn \(k) say \(txn.count)") }
        switch e.streamId {
        case "load-a-\(k)": txn.aPositions.append(e.position)
        case "load-b-\(k)": txn.bPositions.append(e.position)
        default: problems.append("\(at): a body of txn \(k) in another transaction's stream")
        }
        txns[k] = txn
    }
    for m in try allOutbox(store) where m.category != "load" || m.topic != "load.LoadTest" {
        problems.append("outbox seq \(m.seq): category \(m.category), topic \(m.topic)")
    }
    // Transactions are sequential: the ones present are exactly 1...max, in position order,
    // each complete (no partial transaction) and in one contiguous run of positions.
    let ks = txns.keys.sorted()
    if let maxK = ks.last, ks != Array(1...maxK) {
        problems.append("transactions present are not 1...\(maxK): missing \(Set(1...maxK).subtracting(ks).sorted().prefix(10))")
    }
    var previousEnd: Int64 = 0
    for k in ks {
        let t = txns[k]!
        let positions = t.aPositions + t.bPositions
        if Int64(positions.count) != t.count {
            problems.append("txn \(k) is partial: \(positions.count) of its \(t.count) events are present")
        }
        if t.aPositions.isEmpty || t.bPositions.isEmpty || t.aPositions.count > 3 || t.bPositions.count > 3 {
            problems.append("txn \(k) has \(t.aPositions.count) events in load-a and \(t.bPositions.count) in load-b")
        }
        if positions != Array((positions.first ?? 0)..<((positions.first ?? 0) + Int64(positions.count))) {
            problems.append("txn \(k)'s events are not one contiguous run of positions: \(positions)")
        }
        if let first = positions.first, first <= previousEnd {
            problems.append("txn \(k) starts at position \(first), not after the previous transaction (\(previousEnd))")
        }
        previousEnd = positions.last ?? previousEnd
    }
    // Every commit the child reported is there, whole, ending where it said.
    for r in reported {
        guard let t = txns[r.txn] else { problems.append("reported txn \(r.txn) is missing"); continue }
        if (t.aPositions + t.bPositions).last != r.lastPosition {
            problems.append("reported txn \(r.txn) ended at position \(r.lastPosition), the store has it end at \(String(describing: (t.aPositions + t.bPositions).last))")
        }
    }
    let reportedKs = reported.map(\.txn)
    if reportedKs != reportedKs.sorted() || Set(reportedKs).count != reportedKs.count {
        problems.append("the child reported transactions out of order or twice")
    }
    return problems
}

/// The in-process load: what `slam debug-append-load` does, written against the store API so the
/// checker and the kill can be exercised without the CLI (used by the self-hosted child below).
func runLoad(path: String, transactions: Int64, report: (ReportedCommit) -> Void) throws {
    let store = try EventStore.open(path: path)
    let writer = try store.makeWriter()
    let lastTxn = try store.pool.read { db -> Int64 in
        guard let body = try String.fetchOne(db, sql: "SELECT body FROM events ORDER BY position DESC LIMIT 1") else { return 0 }
        return try JSONParser.parse(body)["txn"]?.int64Value ?? 0
    }
    var rng = SystemRandomNumberGenerator()
    for k in (lastTxn + 1)...(lastTxn + transactions) {
        let a = Int.random(in: 1...3, using: &rng), b = Int.random(in: 1...3, using: &rng)
        func load(_ n: Int) -> [NewEvent] {
            (0..<n).map { _ in
                NewEvent(type: "LoadTest", category: "load", body: Array("{\"txn\":\(k),\"count\":\(a + b)}".utf8),
                         occurredAt: Int64(Date().timeIntervalSince1970 * 1000), causationId: "load-\(k)")
            }
        }
        let positions = try store.append([
            (streamId: "load-a-\(k)", expected: .noStream, events: load(a)),
            (streamId: "load-b-\(k)", expected: .noStream, events: load(b)),
        ], using: writer)
        report(ReportedCommit(txn: k, lastPosition: positions.last!))
    }
}

/// Writes one line to stdout with `write(2)`, unbuffered, so a SIGKILL right after loses nothing.
func writeLineUnbuffered(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 { if errno == EINTR { continue } else { return } }
        offset += n
    }
}

// MARK: Running and killing a child

/// What a child run produced.
struct ChildRun {
    var reported: [ReportedCommit] = []
    /// Set when the child stopped (or went silent) before it was killed.
    var failure: String?
    var stderr: String = ""
}

/// Starts `executable`, reads its stdout until `killAfter` commits were reported, SIGKILLs it at
/// once, then drains the pipe (lines written before death are commits too) and reaps it.
/// `silenceLimitMs` is only a safety net against a hung child, never a way to wait for it.
func runAndKill(executable: URL, arguments: [String], environment: [String: String]? = nil,
                killAfter: Int, killJitterMicros: UInt32 = 5_000, stderrPath: String,
                silenceLimitMs: Int32 = 60_000) throws -> ChildRun {
    _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
    let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
    defer { try? errHandle.close() }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = errHandle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let pid = process.processIdentifier
    let fd = out.fileHandleForReading.fileDescriptor

    var run = ChildRun()
    var buffer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    var killed = false
    func takeLines() {
        while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: buffer[..<nl], as: UTF8.self)
            buffer.removeSubrange(...nl)
            if let commit = parseCommitLine(Substring(line)) { run.reported.append(commit) }
        }
    }
    while true {
        if !killed && run.reported.count >= killAfter {
            // Jitter, not synchronization: a kill right after a report would always land at the
            // same point of the next transaction; up to a few transactions' time spreads it over
            // every point (before, inside and between the commits of one transaction).
            usleep(UInt32.random(in: 0..<killJitterMicros))
            kill(pid, SIGKILL)
            killed = true
        }
        if !killed {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, silenceLimitMs)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 {
                kill(pid, SIGKILL)
                killed = true
                run.failure = "the child reported nothing for \(silenceLimitMs) ms (after \(run.reported.count) commits)"
                continue
            }
        }
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }   // EOF: the child (and everything holding its stdout) is gone
        buffer += chunk[0..<n]
        takeLines()
    }
    // Whatever is left has no newline: a line cut short by the kill, which reports nothing.
    process.waitUntilExit()
    run.stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
    if !killed && run.failure == nil {
        run.failure = "the child exited (status \(process.terminationStatus)) after reporting \(run.reported.count) of "
            + "\(killAfter) commits, before it could be killed"
    }
    return run
}

// MARK: Finding `slam`

/// The `slam` executable (see `TestBinaries.slam()`).
func locateSlam() -> URL? { TestBinaries.slam().map { URL(fileURLWithPath: $0) } }
