import ArgumentParser
import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
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
            committed from now on). Started at the head with --checkpoint and no file yet, it \
            writes that starting point at once, so a restart never skips what happened in \
            between; with --from-start the file appears with the first event (a restart before \
            it starts from the first event again).

            The checkpoint file is JSON, {"storeId", "seq"} (plus "category", "categorySeq" with \
            --category), replaced atomically (temporary file, fsync, rename) after each line is \
            written and flushed. A kill between the two repeats at most that one line on restart; \
            a reader that keeps the last seq it read drops it.

            With --output FILE the lines are appended to FILE instead, and FILE is its own \
            checkpoint: a restart continues after its last complete line (a torn last line, which \
            a kill or a crash of the machine could leave, is cut off), so FILE holds every event \
            exactly once, however often the process is killed. A new or empty FILE starts at the \
            first event. FILE is locked while written (a second subscriber on it is refused) and \
            not synced. Restart it with the same --category: a last line of another category is \
            refused, but a file of one category's events restarted for all is not noticed.

            It waits for a server that is not up yet, busy or stopping (saying so once on \
            stderr, a second after its first request unanswered); a reply that is not SLAM/1 ends it at once. With nothing from --events for \
            3 s, not even the heartbeat the server publishes every second (a wrong or unreachable \
            endpoint), it says so on stderr and reads the events through ReadEvents every second \
            until messages come again, which it also says (once each way per silence). An endpoint that is not \
            tcp://HOST:PORT or ipc://PATH is refused before anything runs (exit 64).

            Exit status: 0 on SIGINT, SIGTERM or --until-seq; 1 on an error (a different store; \
            a checkpoint above the store's head, as after a restore from an older copy; an \
            unreadable checkpoint or output file; a failed read; a server it cannot use); 64 on \
            an option it cannot use.
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
    @Option(help: "Append the lines to this file instead of stdout. The file is its own checkpoint: a restart continues after its last complete line (a new or empty file from the first event), so it holds every event exactly once, even across kill -9 (not with --checkpoint).")
    var output: String?
    @Flag(name: .customLong("from-start"), help: "Without a checkpoint to resume from, start at the first event (default: at the head).")
    var fromStart = false
    @Option(name: .customLong("until-seq"), help: "Exit 0 once every event up to this seq has been written (events past it are not).")
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
            try OptionCheck.writableFile(output, option: "--output", inPlace: true)
        }
        // Replaced through a new file beside it, renamed over it: its folder must take one. Without
        // this check a folder that would not was found at the first write: at start when starting
        // at the head, but with --from-start or a checkpoint to resume from only once the first
        // event's line had gone out, unrecorded.
        if let checkpoint { try OptionCheck.writableFile(checkpoint, option: "--checkpoint") }
    }

    func run() throws {
        // SIGINT/SIGTERM: finish the event in hand (its line and checkpoint), then exit 0, also in the
        // middle of a page of a catch-up.
        let stopFlag = StopFlag()
        StopSignals().onSignal { stopFlag.set() }

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
            } else {
                // A new or empty file starts at the first event: started at the head, a file still
                // empty at a kill would hold no position, and the restart would skip what came between.
                start = CheckpointFile(storeId: nil, seq: 0, category: category, categorySeq: category == nil ? nil : 0)
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
        // Said once per outage: an event delivered since means the server answered.
        var told = false
        subscriber.noAnswer = { [server] in
            if !told { note("no answer from \(server) within a second (is a SLAM server running there, or is it that busy?); still asking") }
            told = true
        }
        // A wrong --events gets nothing, not even the heartbeat: said, and the events are read
        // through ReadEvents meanwhile (the subscriber's silence).
        let silenceSeconds = subscriber.silenceMs / 1000
        subscriber.silence = { [events] began in
            if began {
                note("nothing from \(events) for \(silenceSeconds) s, not even a heartbeat (is a SLAM server "
                     + "publishing there? a wrong --events?); reading events through ReadEvents every second meanwhile")
            } else {
                note("messages from \(events) again")
            }
        }
        let untilSeq = self.untilSeq
        let path = checkpoint
        var line: [UInt8] = []
        do {
            try subscriber.run(until: { stopFlag.isSet || (untilSeq.map { subscriber.checkpoint >= $0 } ?? false) }) { event in
                told = false
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
        writeStandardError("slam subscribe: \(message)\n")
    }

    private func fail(_ message: String) -> Never {
        note(message)
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
/// line goes out in one write(2) (a kill can still cut one that spans pages), and a machine's
/// crash may leave a torn last line, or zeros: such a tail is cut off at the next start. So the
/// file's last complete line is always the last event handled, and a restart continues exactly
/// after it: each event once, with no checkpoint of its own to fall out of step. The file is
/// locked (`flock`) while a subscriber writes it, so a second one (a supervisor restarting
/// before the first has exited) is refused rather than append the same events again.
struct OutputFile {
    let fd: Int32
    /// The event of the last complete line; nil for an empty file.
    let lastEvent: SubscribedEvent?

    /// A line of `slam subscribe` begins so; a torn tail that does not (nor is zeros, as a crash
    /// can leave) is not ours, and the file is refused rather than cut.
    private static let linePrefix = Array(#"{"topic":"#.utf8)
    /// Longer than any event line (a body is at most 64 KiB of JSON, escaped at most sixfold).
    private static let maxLine = 1 << 20

    static func open(path: String) throws -> OutputFile {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClientError("cannot open \(path): \(String(cString: strerror(errno)))") }
        do {
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                if errno == EINTR { continue }
                throw ClientError(errno == EWOULDBLOCK ? "\(path) is being written by another slam subscribe"
                                                       : "cannot lock \(path): \(String(cString: strerror(errno)))")
            }
            let size = lseek(fd, 0, SEEK_END)
            guard size >= 0 else { throw ClientError("cannot read \(path): \(String(cString: strerror(errno)))") }
            let end = try lastNewline(fd: fd, before: size, path: path).map { $0 + 1 } ?? 0
            if end < size {
                // A tail after the last complete line: cut only one that a subscriber can have left.
                let head = try read(fd: fd, at: end, count: Int(min(size - end, off_t(linePrefix.count))), path: path)
                let torn = linePrefix.starts(with: head) || head.allSatisfy { $0 == 0 }
                guard torn else {
                    throw ClientError("\(path) does not end with a line of slam subscribe (nor a torn one): not cut, not used")
                }
            }
            var lastEvent: SubscribedEvent?
            if end > 0 {
                let start = try lastNewline(fd: fd, before: end - 1, path: path, within: maxLine).map { $0 + 1 } ?? 0
                let line = try read(fd: fd, at: start, count: Int(end - 1 - start), path: path)
                guard let json = try? JSONParser.parse(line), let event = SubscribedEvent.fromLine(json) else {
                    let shown = line.isEmpty ? "an empty line" : String(decoding: line.prefix(200), as: UTF8.self)
                    throw ClientError("the last line of \(path) is not an event line ({\"topic\", \"header\", \"body\"}): \(shown)")
                }
                lastEvent = event
            }
            if end < size, ftruncate(fd, end) != 0 {
                throw ClientError("cannot cut the torn last line of \(path): \(String(cString: strerror(errno)))")
            }
            return OutputFile(fd: fd, lastEvent: lastEvent)
        } catch {
            close(fd)
            throw error
        }
    }

    /// The offset of the last newline before `offset`, reading backwards a chunk at a time (nil:
    /// none; also none within `within` bytes, when given: a line that long is not an event's).
    private static func lastNewline(fd: Int32, before offset: off_t, path: String, within: Int? = nil) throws -> off_t? {
        let chunk: off_t = 65_536
        var to = offset
        while to > 0 {
            if let within, offset - to >= off_t(within) {
                throw ClientError("the last line of \(path) is longer than \(within) bytes: not an event line")
            }
            let from = max(0, to - chunk)
            let bytes = try read(fd: fd, at: from, count: Int(to - from), path: path)
            if let i = bytes.lastIndex(of: 0x0A) { return from + off_t(i) }
            to = from
        }
        return nil
    }

    private static func read(fd: Int32, at offset: off_t, count: Int, path: String) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, offset) }
        guard got == count else { throw ClientError("cannot read \(path): \(String(cString: strerror(errno)))") }
        return buffer
    }
}
