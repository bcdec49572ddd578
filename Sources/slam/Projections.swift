import ArgumentParser
import Foundation
import SLAMProjections
import SLAMServer
import SLAMStore

struct ProjectionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections",
        abstract: "Manage the read models (projections).",
        subcommands: [ProjectionsRebuild.self]
    )
}

struct ProjectionsRebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild read models from the event log (offline: refuses while a server has the database open).",
        discussion: """
            Folds the whole log in memory, then writes the read-model tables in one transaction: each \
            table is compared with the fold and only the rows that differ are written, or, when many \
            do (or with --full), it is emptied and bulk-inserted. Either way each table ends up equal \
            to the fold, row for row. An interrupted rebuild leaves the database as it was, and \
            running it again starts over. \
            Read models: \(ReadModel.allCases.map(\.rawValue).joined(separator: ", ")) (queue is the \
            queue_tokens and queues tables; users also keeps user_count). Progress goes to stderr when \
            it is a terminal; a summary line goes to stdout.
            """
    )

    @Option(help: "The SQLite database file of the store.")
    var db: String
    @Option(help: "Rebuild only this read model; repeat it for several (default: all).")
    var projection: [String] = []
    @Flag(help: "Rewrite every table in full, even where the rows in place are right (by default only the rows that differ from the log are written).")
    var full = false
    @Option(help: "Decoding threads (default: one per core).")
    var decoders: Int?

    func validate() throws {
        for projection in projection where ReadModel.named(projection) == nil {
            throw ValidationError("unknown projection \(projection); one of: "
                                  + ReadModel.allCases.map(\.rawValue).joined(separator: ", "))
        }
        try OptionCheck.decoders(decoders)
        try OptionCheck.databasePath(db)
    }

    func run() throws {
        // Each named once (`--projection users --projection seats` rebuilt only seats before: the
        // last value won, silently).
        let named = Set(projection.map { ReadModel.named($0)! })
        let models = named.isEmpty ? ReadModel.allCases : ReadModel.allCases.filter(named.contains)
        let meter = ProgressMeter(label: "rebuild")
        let report: RebuildReport
        do {
            report = try Rebuild.run(path: db, models: models, full: full, decoders: decoders, progress: meter.update)
        } catch {
            meter.clear()
            writeStandardError("slam projections rebuild: \(error)\n")
            throw ExitCode(1)
        }
        meter.clear()
        let rate = report.foldSeconds > 0 ? Double(report.headPosition) / report.foldSeconds : 0
        let rows = report.tables.map { t in
            t.mode == .replace ? "\(t.table)=\(t.rows) (replaced)"
                : "\(t.table)=\(t.rows) (\(t.inserted) inserted, \(t.updated) updated, \(t.deleted) deleted)"
        }.joined(separator: ", ")
        print("rebuilt \(report.models.map(\.rawValue).joined(separator: ",")) from \(report.events) events "
              + "(head position \(report.headPosition)) in \(fmt(report.totalSeconds)) s: "
              + "fold \(fmt(report.foldSeconds)) s (\(Int(rate)) events/s), write \(fmt(report.writeSeconds)) s; rows: \(rows)")
    }
}

func fmt(_ seconds: Double) -> String { String(format: "%.2f", seconds) }

/// Progress on a terminal (stderr), updated in place at most five times a second: phase, done of
/// total, rate, ETA. Silent when stderr is not a terminal.
final class ProgressMeter: @unchecked Sendable {
    let label: String
    let enabled = isatty(STDERR_FILENO) != 0
    private var last = Date.distantPast
    private var shown = false
    private let lock = NSLock()

    init(label: String) { self.label = label }

    func update(_ p: RebuildProgress) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(last) >= 0.2 || p.done >= p.total else { return }
        last = now
        let unit = p.phase == .fold ? "events" : p.phase == .write ? "rows" : "checks"
        let rate = p.elapsed > 0 ? Double(p.done) / p.elapsed : 0
        let eta = rate > 0 ? Double(max(p.total - p.done, 0)) / rate : 0
        let percent = p.total > 0 ? Int(100 * Double(p.done) / Double(p.total)) : 100
        let text = "\(label): \(p.phase.rawValue) \(p.done)/\(p.total) \(unit) (\(percent)%)  \(Int(rate)) \(unit)/s  ETA \(Int(eta.rounded())) s"
        writeStandardError("\r\u{1B}[K" + text)
        shown = true
    }

    func clear() {
        lock.lock()
        defer { lock.unlock() }
        if shown { writeStandardError("\r\u{1B}[K") }
        shown = false
    }
}
