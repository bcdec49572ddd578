import SLAMDomain

/// What the writer says on stderr about failing batches (and the query workers about failing
/// queries). While the disk is full every batch fails, and a line each (an audit counted 2,214
/// in 25 s) buried the first one, which says why; so the first failure of a run of them is
/// logged, then at most one line per `interval` with how many failed since the last line, and
/// the first batch that commits again says how many failed in all (queries, which fail and
/// succeed interleaved, are only throttled). Times are on a monotonic clock, in milliseconds.
struct FailureLog {
    let interval: Millis
    /// What fails, in the plural ("batches").
    let what: String
    /// Batches failed since the last one that committed.
    private(set) var failedInRun = 0
    /// Of those, the ones not logged yet.
    private(set) var unlogged = 0
    private var lastLine: Millis = 0

    init(interval: Millis = 1_000, what: String = "batches") {
        self.interval = interval
        self.what = what
    }

    /// A batch failed with `message`: the line to log, or nil to count it silently.
    mutating func failed(_ message: String, now: Millis) -> String? {
        failedInRun += 1
        guard failedInRun == 1 || now - lastLine >= interval else {
            unlogged += 1
            return nil
        }
        defer { unlogged = 0; lastLine = now }
        return unlogged == 0 ? message : "\(message) (and \(unlogged) more \(what) failed since the last line)"
    }

    /// A batch committed: after failures, the line that says so.
    mutating func committed() -> String? {
        guard failedInRun > 0 else { return nil }
        defer { failedInRun = 0; unlogged = 0 }
        return "\(what) commit again, after \(failedInRun) failed in a row"
            + (unlogged == 0 ? "" : " (\(unlogged) of them not logged)")
    }
}
