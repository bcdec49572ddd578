import ArgumentParser
import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `slam subscribe`: the reference subscriber process (PROTOCOL.md section 7), over
/// `SLAMClient.Subscriber`. One JSON line per event on stdout, each event once, in order; the
/// checkpoint file is replaced atomically after each line, so a restart with it continues with
/// the next event.
struct Subscribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Follow the event stream: each event once, in order, as one JSON line {\"topic\", \"header\", \"body\"}.",
        discussion: """
            Where it starts: from the checkpoint file when it exists (the stream continues exactly \
            after the last event written before the process stopped, even by kill -9); otherwise \
            from the first event with --from-start, or else from the current head (only events \
            committed from now on). With --checkpoint and no file yet, the starting point is \
            written at once, so a restart never skips what happened in between.

            The checkpoint file is JSON, {"storeId", "seq"} (plus "category", "categorySeq" with \
            --category), replaced atomically (temporary file, fsync, rename) after each line is \
            written and flushed. A kill between the two repeats at most that one line on restart; \
            a reader that keeps the last seq it read drops it.

            With --output FILE the lines are appended to FILE instead, and FILE is its own \
            checkpoint: a restart continues after its last complete line (a torn last line, which \
            a crash of the machine could leave, is cut off), so FILE holds every event exactly \
            once, however often the process is killed. Restart it with the same --category. \
            FILE is not synced. With an empty FILE it starts as without a checkpoint.

            It waits for a server that is not up yet, busy or stopping (saying so once on \
            stderr); a reply that is not SLAM/1 ends it at once. An endpoint that is not \
            tcp://HOST:PORT or ipc://PATH is refused before anything runs (exit 64).

            Exit status: 0 on SIGINT, SIGTERM or --until-seq; 1 on an error (a different store, \
            an unreadable checkpoint, a failed read, an endpoint or server it cannot use).
            """
    )

    @Option(help: "The server's command endpoint (ReadEvents, GetStats).")
    var server = "tcp://127.0.0.1:5555"
    @Option(help: "The server's event endpoint (PUB).")
    var events = "tcp://127.0.0.1:5556"
    @Option(help: "Follow one category only (user, wallet, concert, queue, reservation).")
    var category: String?
    @Option(help: "A file keeping the last seq written; read at start, replaced after each event.")
    var checkpoint: String?
    @Option(help: "Append the lines to this file instead of stdout. The file is its own checkpoint: a restart continues after its last complete line, so it holds every event exactly once, even across kill -9 (not with --checkpoint).")
    var output: String?
    @Flag(name: .customLong("from-start"), help: "Without a checkpoint to resume from, start at the first event (default: at the head).")
    var fromStart = false
    @Option(name: .customLong("until-seq"), help: ArgumentHelp("Exit 0 once every event up to this seq has been handled.", visibility: .hidden))
    var untilSeq: Int64?
    @Option(name: .customLong("rcvhwm"), help: ArgumentHelp("ZMQ_RCVHWM of the SUB socket (tests).", visibility: .hidden))
    var rcvhwm: Int32 = 1000

    func validate() throws {
        if let category {
            guard DomainEvent.categories.contains(category) else {
                throw ValidationError("--category must be one of " + DomainEvent.categories.sorted().joined(separator: ", "))
            }
        }
        guard rcvhwm >= 0 else { throw ValidationError("--rcvhwm must be at least 0") }
        if let untilSeq { guard untilSeq >= 0 else { throw ValidationError("--until-seq must be at least 0") } }
        try OptionCheck.endpoint(server, option: "--server", bind: false)
        try OptionCheck.endpoint(events, option: "--events", bind: false)
        if let output {
            guard checkpoint == nil else {
                throw ValidationError("--output and --checkpoint exclude each other: the output file is its own checkpoint")
            }
            try OptionCheck.writableFile(output, option: "--output")
        }
    }

    func run() throws {
        // SIGINT/SIGTERM: finish the event in hand (its line and checkpoint), then exit 0, also in the
        // middle of a page of a catch-up.
        let stopFlag = StopFlag()
        let signals = onStopSignals { stopFlag.set() }
        defer { signals.forEach { $0.cancel() } }

        do {
            try follow(stopFlag)
        } catch let error as ExitCode {
            throw error
        } catch {
            fail("\(error)")
        }
    }

    private func follow(_ stopFlag: StopFlag) throws {
        var out = STDOUT_FILENO
        var start = try checkpoint.flatMap { try CheckpointFile.read(path: $0, category: category) }
        if let output {
            let file = try OutputFile.open(path: output)
            out = file.fd
            if let last = file.lastEvent {
                guard category == nil || last.category == category else {
                    fail("the last line of \(output) is an event of category \(last.category), not \(category!): "
                         + "it was written with another --category")
                }
                start = CheckpointFile(storeId: last.storeId, seq: last.seq, category: category,
                                       categorySeq: category == nil ? nil : last.categorySeq)
            }
        }
        defer { if out != STDOUT_FILENO { fsync(out); close(out) } }
        if let saved = start {
            if saved.category != category {
                fail("the checkpoint \(checkpoint!) is for \(saved.category.map { "category \($0)" } ?? "every category"), "
                     + "not \(category.map { "category \($0)" } ?? "every category")")
            }
        } else if fromStart {
            start = CheckpointFile(storeId: nil, seq: 0, category: category, categorySeq: category == nil ? nil : 0)
        } else {
            // Only new events: from the head as it is now (waiting for the server if it is not up).
            guard let head = try currentHead(stopFlag) else { return }
            start = CheckpointFile(storeId: head.storeId, seq: head.headSeq, category: category, categorySeq: nil)
            if let path = checkpoint { try start!.write(path: path) }
        }
        let from = start!
        let subscriber = try Subscriber(commandsEndpoint: server, eventsEndpoint: events, category: category,
                                        afterSeq: from.seq, afterCategorySeq: from.categorySeq, storeId: from.storeId,
                                        receiveHighWaterMark: rcvhwm)
        defer { subscriber.close() }
        var told = false
        subscriber.noAnswer = { [server] in
            if !told { note("no answer from \(server) yet (is a SLAM server running there?); asking again") }
            told = true
        }
        let untilSeq = self.untilSeq
        let path = checkpoint
        var line: [UInt8] = []
        do {
            try subscriber.run(until: { stopFlag.isSet || (untilSeq.map { subscriber.checkpoint >= $0 } ?? false) }) { event in
                // A page of ReadEvents may run past --until-seq: the events beyond it are not written.
                if let untilSeq, event.seq > untilSeq { return }
                // A signal during a page of a catch-up stops before the next event, not at the page's end.
                if stopFlag.isSet { throw Stopped() }
                line.removeAll(keepingCapacity: true)
                line.append(contentsOf: event.jsonLine)
                line.append(0x0A)
                try writeAll(line, to: out)
                if let path {
                    try CheckpointFile(storeId: event.storeId ?? subscriber.storeId, seq: event.seq, category: category,
                                       categorySeq: category == nil ? nil : event.categorySeq).write(path: path)
                }
            }
        } catch is Stopped {
            return
        }
    }

    /// Thrown by the handler to leave a page of events when a stop signal came.
    private struct Stopped: Error {}

    /// The store's head, asked until the server answers (it may not be up yet, or be busy or
    /// stopping); nil when stopped first. Any other error (an endpoint ZeroMQ refuses, such as
    /// one without `tcp://`, a reply that is not SLAM/1, or an answer that retrying will not
    /// change) ends it.
    private func currentHead(_ stopFlag: StopFlag) throws -> (storeId: String, headSeq: Int64)? {
        var told = false
        while !stopFlag.isSet {
            do {
                return try Subscriber.head(commandsEndpoint: server, timeoutMs: 1000)
            } catch let error as ClientError where error.timedOut {
                // No answer within the second: ask again (said once, so that a wrong endpoint shows).
                if !told { note("no answer from \(server) yet (is a SLAM server running there?); asking again every second") }
                told = true
                continue
            } catch let error as SubscriberError where error.kind == .serverBusy {
                Thread.sleep(forTimeInterval: 0.1)  // busy or stopping: ask again shortly
            }
        }
        return nil
    }

    private func note(_ message: String) {
        FileHandle.standardError.write(Data("slam subscribe: \(message)\n".utf8))
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("slam subscribe: \(message)\n".utf8))
        Foundation.exit(1)
    }
}

/// Set from a signal handler's queue, read by the subscriber's loop.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Writes all of `bytes` to `fd` (retrying short writes and EINTR), unbuffered. For stdout, a
/// line that fits the pipe goes out in one write(2): once this returns, it is out of the process.
private func writeAll(_ bytes: [UInt8], to fd: Int32 = STDOUT_FILENO) throws {
    try bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw ClientError("cannot write \(fd == STDOUT_FILENO ? "to stdout" : "the output"): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}

/// The checkpoint file: `{"storeId": …, "seq": N}`, with `"category"` and `"categorySeq"` when
/// following one category. A bare integer (hand-written) is read as `seq` of the category asked for.
struct CheckpointFile: Equatable {
    var storeId: String?
    var seq: Int64
    var category: String?
    var categorySeq: Int64?

    /// nil when the file does not exist; throws when it exists but is not a checkpoint.
    static func read(path: String, category: String?) throws -> CheckpointFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ClientError("cannot read the checkpoint \(path): \(error.localizedDescription)")
        }
        let json: JSON
        do { json = try JSONParser.parse(Array(data)) } catch {
            throw ClientError("the checkpoint \(path) is not JSON: \(error)")
        }
        if let n = json.int64Value, n >= 0 { return CheckpointFile(storeId: nil, seq: n, category: category, categorySeq: nil) }
        guard let seq = json["seq"]?.int64Value, seq >= 0 else {
            throw ClientError("the checkpoint \(path) has no valid \"seq\": \(String(decoding: data, as: UTF8.self))")
        }
        let categorySeq = json["categorySeq"]?.int64Value
        if let c = categorySeq, c < 0 { throw ClientError("the checkpoint \(path) has a negative categorySeq") }
        return CheckpointFile(storeId: json["storeId"]?.stringValue, seq: seq, category: json["category"]?.stringValue,
                              categorySeq: categorySeq)
    }

    /// Replaces the file atomically: a temporary file beside it, written and fsynced, renamed
    /// over it. A kill at any instant leaves the old checkpoint or the new one, never a mix.
    func write(path: String) throws {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        if let storeId { w.field("storeId", storeId) }
        w.field("seq", seq)
        if let category { w.field("category", category) }
        if let categorySeq { w.field("categorySeq", categorySeq) }
        w.endObject()
        var bytes = w.bytes
        bytes.append(0x0A)
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClientError("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        do {
            try writeAll(bytes, to: fd)
            guard fsync(fd) == 0 else { throw ClientError(String(cString: strerror(errno))) }
        } catch {
            close(fd)
            throw ClientError("cannot write \(tmp): \(error)")
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            throw ClientError("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// `--output FILE`: the subscriber's lines appended to a file that is its own checkpoint. Each
/// line goes out in one write(2), so a kill leaves whole lines (and the page cache keeps them);
/// a machine's crash may leave a torn last line, or zeros, which are cut off at the next start.
/// So the file's last complete line is always the last event handled, and a restart continues
/// exactly after it: each event once, with no checkpoint of its own to fall out of step.
struct OutputFile {
    let fd: Int32
    /// The event of the last complete line; nil for an empty file.
    let lastEvent: SubscribedEvent?

    static func open(path: String) throws -> OutputFile {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClientError("cannot open \(path): \(String(cString: strerror(errno)))") }
        do {
            let (end, line) = try lastLine(fd: fd, path: path)
            if ftruncate(fd, end) != 0 {
                throw ClientError("cannot cut the torn last line of \(path): \(String(cString: strerror(errno)))")
            }
            guard let line else { return OutputFile(fd: fd, lastEvent: nil) }
            guard let json = try? JSONParser.parse(line), let event = SubscribedEvent.fromLine(json) else {
                throw ClientError("the last line of \(path) is not an event line ({\"topic\", \"header\", \"body\"}): "
                                  + String(decoding: line.prefix(200), as: UTF8.self))
            }
            return OutputFile(fd: fd, lastEvent: event)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Where the file's complete lines end (after the last newline; 0 without one) and the last
    /// complete line itself, without its newline. Reads backwards from the end, a chunk at a time.
    private static func lastLine(fd: Int32, path: String) throws -> (end: off_t, line: [UInt8]?) {
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else { throw ClientError("cannot read \(path): \(String(cString: strerror(errno)))") }
        var tail: [UInt8] = []  // the bytes from `from` to the end of the file
        var from = size
        var end: off_t? = nil   // the offset just after the last newline
        let chunk: off_t = 65_536
        while from > 0 {
            let n = min(chunk, from)
            from -= n
            var buffer = [UInt8](repeating: 0, count: Int(n))
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(n), from) }
            guard got == Int(n) else { throw ClientError("cannot read \(path): \(String(cString: strerror(errno)))") }
            tail = buffer + tail
            if end == nil, let i = tail.lastIndex(of: 0x0A) { end = from + off_t(i) + 1 }
            if let end {
                // The line ending at `end` starts after the newline before it, if this chunk has it.
                let lineEnd = Int(end - from) - 1
                if let start = tail[..<lineEnd].lastIndex(of: 0x0A) { return (end, Array(tail[(start + 1)..<lineEnd])) }
                if from == 0 { return (end, Array(tail[..<lineEnd])) }
            }
        }
        return (0, nil)
    }
}
