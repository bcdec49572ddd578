import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMStore

/// A fresh directory under the system temporary directory, one per test, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("slam-store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Runs `body` with a store opened on a new file in a fresh temporary directory.
func withStore<T>(sync: SyncMode = .full, _ body: (EventStore, TemporaryDirectory) throws -> T) throws -> T {
    let dir = try TemporaryDirectory()
    defer { dir.remove() }
    let store = try EventStore.open(path: dir.path("store.sqlite"), sync: sync)
    return try body(store, dir)
}

/// A fixed instant with a non-zero millisecond part, so the header's `.mmm` is tested too.
let t0: Millis = 1_700_000_000_123   // 2023-11-14T22:13:20.123Z

func event(_ type: String = "Tested", category: String = "test", _ body: String = "{}",
           at occurredAt: Millis = t0, causation: String = "key-1") -> NewEvent {
    NewEvent(type: type, category: category, body: Array(body.utf8), occurredAt: occurredAt, causationId: causation)
}

func events(_ n: Int, _ type: String = "Tested", category: String = "test", causation: String = "key-1") -> [NewEvent] {
    (0..<n).map { i in event(type, category: category, "{\"i\":\(i + 1)}", at: t0 + Millis(i), causation: causation) }
}

/// Appends in its own transaction through `writer`, keeping the writer's heads right on failure.
@discardableResult
func append(_ store: EventStore, _ writer: StoreWriter, _ streamId: String, _ expected: ExpectedVersion,
            _ newEvents: [NewEvent]) throws -> [Int64] {
    try store.append([(streamId: streamId, expected: expected, events: newEvents)], using: writer)
}

func allEvents(_ store: EventStore) throws -> [RecordedEvent] {
    var out: [RecordedEvent] = []
    var after: Int64 = 0
    while true {
        let page = try store.readAll(after: after, limit: 500)
        guard let last = page.last else { return out }
        out += page
        after = last.position
    }
}

func allOutbox(_ store: EventStore, category: String? = nil) throws -> [OutboxMessage] {
    try store.pool.read { db in
        var out: [OutboxMessage] = []
        var after: Int64 = 0
        while true {
            let page = try EventStore.readOutbox(db, afterSeq: after, limit: 500, category: category)
            guard let last = page.last else { return out }
            out += page
            after = last.seq
        }
    }
}

func isStoreError(_ error: any Error, _ code: StoreError.Code) -> Bool {
    (error as? StoreError)?.code == code
}

// MARK: Checking the event store's invariants

/// Every problem found in the events and outbox tables (an empty list means the store is
/// consistent): positions 1...n without a gap, each stream's versions 1...v without a gap, and
/// exactly one outbox row per event with contiguous `seq`, contiguous `categorySeq` per category,
/// the right topic and a header describing the event.
func storeProblems(_ store: EventStore) throws -> [String] {
    var problems: [String] = []
    let events = try allEvents(store)
    let outbox = try allOutbox(store)
    for (i, e) in events.enumerated() where e.position != Int64(i + 1) {
        problems.append("event #\(i + 1) has position \(e.position): positions have a gap")
        break
    }
    var versions: [String: Int64] = [:]
    for e in events {
        let expected = (versions[e.streamId] ?? 0) + 1
        if e.streamVersion != expected {
            problems.append("stream \(e.streamId): version \(e.streamVersion) at position \(e.position), expected \(expected)")
        }
        versions[e.streamId] = e.streamVersion
    }
    if outbox.count != events.count {
        problems.append("\(outbox.count) outbox rows for \(events.count) events")
    }
    for (i, m) in outbox.enumerated() where m.seq != Int64(i + 1) {
        problems.append("outbox row #\(i + 1) has seq \(m.seq): seq has a gap")
        break
    }
    var categorySeqs: [String: Int64] = [:]
    for m in outbox {
        let expected = (categorySeqs[m.category] ?? 0) + 1
        if m.categorySeq != expected {
            problems.append("category \(m.category): categorySeq \(m.categorySeq) at seq \(m.seq), expected \(expected)")
        }
        categorySeqs[m.category] = m.categorySeq
    }
    for (e, m) in zip(events, outbox) {
        problems += outboxProblems(m, for: e, storeId: store.storeId)
    }
    return problems
}

/// What is wrong with `m` as the outbox row of `e` (PROTOCOL.md section 7).
func outboxProblems(_ m: OutboxMessage, for e: RecordedEvent, storeId: String) -> [String] {
    var problems: [String] = []
    let at = "outbox seq \(m.seq) (position \(e.position))"
    if m.topic != m.category + "." + e.type { problems.append("\(at): topic \(m.topic)") }
    if m.body != e.body { problems.append("\(at): body \(m.body) differs from the event's \(e.body)") }
    guard let header = try? JSONParser.parse(m.header), let object = header.objectValue else {
        return problems + ["\(at): header is not a JSON object: \(m.header)"]
    }
    let keys = Set(object.keys)
    let required: Set = ["seq", "categorySeq", "storeId", "type", "streamId", "streamVersion", "position",
                         "occurredAt", "causationId"]
    if keys != required { problems.append("\(at): header keys \(keys.sorted()), expected \(required.sorted())") }
    func int(_ k: String) -> Int64? { header[k]?.int64Value }
    func str(_ k: String) -> String? { header[k]?.stringValue }
    if int("seq") != m.seq { problems.append("\(at): header seq \(String(describing: int("seq")))") }
    if int("categorySeq") != m.categorySeq { problems.append("\(at): header categorySeq \(String(describing: int("categorySeq")))") }
    if str("storeId") != storeId { problems.append("\(at): header storeId \(String(describing: str("storeId")))") }
    if str("type") != e.type { problems.append("\(at): header type \(String(describing: str("type")))") }
    if str("streamId") != e.streamId { problems.append("\(at): header streamId \(String(describing: str("streamId")))") }
    if int("streamVersion") != e.streamVersion { problems.append("\(at): header streamVersion \(String(describing: int("streamVersion")))") }
    if int("position") != e.position { problems.append("\(at): header position \(String(describing: int("position")))") }
    if str("causationId") != e.causationId { problems.append("\(at): header causationId \(String(describing: str("causationId")))") }
    let occurredAt = str("occurredAt") ?? ""
    if !isRFC3339UTCMillis(occurredAt) || RFC3339.parse(occurredAt) != e.occurredAt {
        problems.append("\(at): header occurredAt \(occurredAt) for \(e.occurredAt) ms")
    }
    return problems
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, exactly.
func isRFC3339UTCMillis(_ s: String) -> Bool {
    let b = Array(s.utf8)
    guard b.count == 24 else { return false }
    for (i, c) in b.enumerated() {
        switch i {
        case 4, 7: if c != UInt8(ascii: "-") { return false }
        case 10: if c != UInt8(ascii: "T") { return false }
        case 13, 16: if c != UInt8(ascii: ":") { return false }
        case 19: if c != UInt8(ascii: ".") { return false }
        case 23: if c != UInt8(ascii: "Z") { return false }
        default: if c < UInt8(ascii: "0") || c > UInt8(ascii: "9") { return false }
        }
    }
    return true
}
