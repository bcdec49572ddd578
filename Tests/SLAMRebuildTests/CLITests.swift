import Foundation
import SLAMStore
import Testing

@Suite("The CLI (slam projections rebuild, slam verify, slam serve) as a process")
struct CLITests {
    @Test("rebuild and verify exit 0 on a healthy store; verify exits 1 naming a corruption")
    func rebuildAndVerify() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let rebuild = try runSlam(["projections", "rebuild", "--db", copy])
        #expect(rebuild.status == 0, "\(rebuild.stderr)")
        #expect(rebuild.stdout.hasPrefix("rebuilt users,point_history,concerts,schedules,seats,reservations,queue from "))
        let one = try runSlam(["projections", "rebuild", "--db", copy, "--projection", "seats", "--full"])
        #expect(one.status == 0 && one.stdout.contains("seats=17 (replaced)"), "\(one.stdout) \(one.stderr)")
        let two = try runSlam(["projections", "rebuild", "--db", copy, "--projection", "users", "--projection", "seats"])
        #expect(two.status == 0 && two.stdout.hasPrefix("rebuilt users,seats from "), "\(two.stdout) \(two.stderr)")
        let ok = try runSlam(["verify", "--db", copy])
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        #expect(ok.stdout.hasPrefix("slam verify: OK"))

        try execute(copy, "UPDATE users SET balance = balance + 1 WHERE user_id = ?", [f.users["c"]!])
        let bad = try runSlam(["verify", "--db", copy])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("[balance-history] user \(f.users["c"]!) has balance"), "\(bad.stdout)")
        #expect(bad.stdout.contains("slam verify: FAILED: 2 violations"), "\(bad.stdout)")

        let unknown = try runSlam(["projections", "rebuild", "--db", copy, "--projection", "nope"])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown projection nope"))
        let missing = try runSlam(["verify", "--db", copy + ".missing"])
        #expect(missing.status == 2 && missing.stderr.contains("no database at"))
        let notADatabase = copy + ".text"
        try Data(String(repeating: "not a database ", count: 20).utf8).write(to: URL(fileURLWithPath: notADatabase))
        defer { remove(notADatabase) }
        let text = try runSlam(["verify", "--db", notADatabase])
        #expect(text.status == 2 && text.stderr == "slam verify: cannot open \(notADatabase): file is not a database\n", "\(text.stderr)")
    }

    @Test("rebuild and serve refuse, with a clear message, while a server has the database")
    func refusesWhileServing() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let live = try LiveServer(path: copy)
        defer { live.stop() }
        let rebuild = try runSlam(["projections", "rebuild", "--db", copy])
        #expect(rebuild.status == 1)
        #expect(rebuild.stderr.contains("slam projections rebuild: the database \(copy) is in use"), "\(rebuild.stderr)")
        #expect(rebuild.stderr.contains(copy + ".lock") && rebuild.stderr.contains("slam serve (pid"))
        let folder = (copy as NSString).deletingLastPathComponent
        let serve = try runSlam(["serve", "--db", copy, "--commands", "ipc://\(folder)/c2", "--events", "ipc://\(folder)/e2"])
        #expect(serve.status == 1)
        #expect(serve.stderr.contains("slam serve: the database \(copy) is in use"), "\(serve.stderr)")
        // verify reads beside the server.
        let verify = try runSlam(["verify", "--db", copy])
        #expect(verify.status == 0, "\(verify.stdout)")
        // The crash test's appending child takes the lock too: it appended beside a server once,
        // taking positions the server's writer had in memory (every command then INTERNAL).
        let append = try runSlam(["debug-append-load", "--db", copy, "--transactions", "1"])
        #expect(append.status == 1 && append.stderr.contains("is in use"), "\(append.stderr)")
        // Another server (another store) on the live server's ipc:// endpoint: libzmq's bind would
        // take the endpoint from it, leaving the first server unreachable. Refused; it still answers.
        let other = folder + "/other.sqlite"
        let takeover = try runSlam(["serve", "--db", other, "--commands", "ipc://\(folder)/commands", "--events", "ipc://\(folder)/e3"])
        #expect(takeover.status == 1 && takeover.stderr.contains("a process is listening there already"), "\(takeover.stderr)")
        #expect(!FileManager.default.fileExists(atPath: other), "refused before the store was created")
        #expect(try live.client.call("GetStats").ok)
        // A file that is not a socket at an ipc:// path: libzmq's bind would delete it.
        let precious = folder + "/precious"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: precious))
        let overFile = try runSlam(["serve", "--db", other, "--commands", "ipc://\(precious)", "--events", "ipc://\(folder)/e6"])
        #expect(overFile.status == 1 && overFile.stderr.contains("is not a socket"), "\(overFile.stderr)")
        #expect(try String(contentsOfFile: precious, encoding: .utf8) == "keep me")
        // A hard link names the same file by another path, with a lock file of its own: an audit ran
        // two servers on one store that way, and one server's acknowledged commands were lost.
        let link = folder + "/link.sqlite"
        try FileManager.default.linkItem(atPath: copy, toPath: link)
        defer { try? FileManager.default.removeItem(atPath: link) }
        let throughLink = try runSlam(["serve", "--db", link, "--commands", "ipc://\(folder)/c4", "--events", "ipc://\(folder)/e4"])
        #expect(throughLink.status == 1 && throughLink.stderr.contains("in use through another path"), "\(throughLink.stderr)")
        let rebuildThroughLink = try runSlam(["projections", "rebuild", "--db", link])
        #expect(rebuildThroughLink.status == 1 && rebuildThroughLink.stderr.contains("in use through another path"),
                "\(rebuildThroughLink.stderr)")
        // And one after the other: each name has a WAL of its own, so what a server commits through
        // one is lost to the other (reproduced in a review). Refused while the file has two names.
        live.stop()
        let afterwards = try runSlam(["serve", "--db", link, "--commands", "ipc://\(folder)/c5", "--events", "ipc://\(folder)/e5"])
        #expect(afterwards.status == 1 && afterwards.stderr.contains("has 2 names (hard links)"), "\(afterwards.stderr)")
        let original = try runSlam(["projections", "rebuild", "--db", copy])
        #expect(original.status == 1 && original.stderr.contains("has 2 names (hard links)"), "\(original.stderr)")
    }

    /// Option values that crashed a command (an overflow, an empty range), hung it (a rate whose
    /// interval rounds to nothing) or made a half-written store are refused before anything
    /// runs: exit 64 (usage), naming the option.
    @Test(arguments: [
        (["serve", "--hold-ttl", "9223372036854776"], "--hold-ttl"),
        (["bench", "--max", "--duration", "1e300"], "--duration"),
        (["bench", "--rate", "9223372036854775807"], "--rate"),
        (["bench", "--max", "--seats", "100001"], "--seats"),
        (["bench", "--max", "--connections", "1000000"], "--connections"),
        (["bench", "--max", "--queue", "--queue-max-active", "0"], "--queue-max-active"),
        (["bench", "--max", "--reply-timeout", "0"], "--reply-timeout"),
        (["bench", "--max", "--reply-timeout", "nan"], "--reply-timeout"),
        (["bench", "--max", "--reply-timeout", "61"], "--reply-timeout"),
        (["call", "GetStats", "--timeout", "-1"], "--timeout"),
        (["debug-generate", "--db", "/nonexistent/x.sqlite", "--seats", "3"], "--seats"),
        (["debug-generate", "--db", "/nonexistent/x.sqlite", "--batch", "0"], "--batch"),
        (["debug-append-load", "--db", "/nonexistent/x.sqlite", "--transactions", "-1"], "--transactions"),
        (["verify", "--db", "/nonexistent/x.sqlite", "--decoders", "0"], "--decoders"),
        (["subscribe", "--category", "nosuch"], "--category"),
        (["projections", "rebuild", "--db", "/nonexistent/x.sqlite", "--decoders", "0"], "--decoders"),
        // --decoders 100000 crashed rebuild and verify (SIGILL: no memory for the threads).
        (["projections", "rebuild", "--db", "/nonexistent/x.sqlite", "--decoders", "257"], "--decoders"),
        (["verify", "--db", "/nonexistent/x.sqlite", "--decoders", "100000"], "--decoders"),
        (["verify", "--db", "/nonexistent/x.sqlite", "--scratch", "/nonexistent"], "--scratch"),
        // Endpoints: libzmq wraps a port above 65535 (99999 bound 34463), refuses one without its
        // transport only once the store was created, and an inproc:// one no other process reaches.
        (["serve", "--db", "/nonexistent/x.sqlite", "--commands", "tcp://127.0.0.1:99999"], "--commands"),
        (["serve", "--db", "/nonexistent/x.sqlite", "--events", "127.0.0.1:5556"], "--events"),
        (["serve", "--db", "/nonexistent/x.sqlite", "--commands", "inproc://x"], "--commands"),
        // libzmq binds an address or an interface, and looks no host name up: "localhost" failed
        // with "No such device" once the store was created.
        (["serve", "--db", "/nonexistent/x.sqlite", "--commands", "tcp://localhost:5555"], "--commands"),
        (["serve", "--db", "/nonexistent/x.sqlite", "--events", "tcp://[::zz]:0"], "--events"),
        (["serve", "--db", "/nonexistent/x.sqlite", "--commands", "ipc:///tmp/same", "--events", "ipc:///tmp/same"], "--events"),
        (["serve", "--db", ""], "--db"),
        (["serve", "--db", "/dev/null"], "--db"),
        (["serve", "--db", "/nonexistent/x.sqlite", "--commands", "ipc:///tmp/" + String(repeating: "x", count: 110)], "--commands"),
        (["serve", "--db", "/tmp"], "--db"),
        (["serve", "--db", "/nonexistent/x.sqlite", "--timings", "/nonexistent/t.csv"], "--timings"),
        (["serve", "--db", "/nonexistent/x.sqlite", "--timings", "/tmp"], "--timings"),
        (["debug-generate", "--db", ""], "--db"),
        (["call", "GetStats", "--server", "127.0.0.1:5555"], "--server"),
        (["call", "GetStats", "--server", "tcp://127.0.0.1:0"], "--server"),
        (["call", "GetStats", "--timeout=0"], "--timeout must be at least 1"),
        // The bench names the option out of range, and checks --json before the run, not after it.
        (["bench", "--max", "--seats", "3"], "--seats"),
        (["bench", "--max", "--users", "0"], "--users"),
        (["bench", "--max", "--threads", "0"], "--threads"),
        (["bench", "--max", "--duration", "0"], "--duration"),
        (["bench", "--max", "--json", "/nonexistent/x.json"], "--json"),
        (["bench", "--max", "--events", "tcp://127.0.0.1"], "--events"),
        (["subscribe", "--output", "/nonexistent/x.jsonl"], "--output"),
        // With --from-start or a checkpoint to resume from, found only once the first event's line had
        // gone out, its checkpoint unwritten.
        (["subscribe", "--checkpoint", "/nonexistent/cp.json"], "--checkpoint /nonexistent/cp.json cannot be written"),
        (["subscribe", "--checkpoint", "/tmp"], "--checkpoint /tmp is a folder"),
        // ArgumentParser answered help for no such subcommand with the root's help, exit 0.
        (["help", "nosuch"], "no subcommand \"nosuch\"; see 'slam --help'"),
        (["help", "projections", "nosuch"], "no subcommand \"nosuch\"; see 'slam projections --help'"),
        // An option's value is no command name: ArgumentParser's own refusal, as before.
        (["help", "serve", "--db", "x"], "Unknown option '--db'"),
    ])
    func outOfRangeOptionsAreRefusedUpFront(arguments: [String], option: String) throws {
        let run = try runSlam(arguments)
        #expect(run.status == 64, "\(arguments): exit \(run.status), \(run.stderr)")
        #expect(run.stderr.contains(option), "\(run.stderr)")
    }

    @Test("slam help names a subcommand's help, exit 0", arguments: [
        (["help"], "OVERVIEW: SLAM: an event-sourced"),
        (["help", "serve"], "OVERVIEW: Run the server"),
        (["help", "projections", "rebuild"], "OVERVIEW: Rebuild read models"),
        // As before: ArgumentParser's own help command, and what follows a command without subcommands.
        (["help", "help"], "OVERVIEW: Show subcommand help information."),
        (["help", "serve", "extra"], "OVERVIEW: Run the server"),
    ])
    func helpForASubcommand(arguments: [String], overview: String) throws {
        let run = try runSlam(arguments)
        #expect(run.status == 0 && run.stdout.hasPrefix(overview), "\(arguments): exit \(run.status), \(run.stdout)")
    }

    @Test("slam verify stopped by SIGINT removes its scratch database and exits 130")
    func verifyInterruptedLeavesNoScratch() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("slam-scratch-" + UUID().uuidString).path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // Signalled as soon as its scratch database exists; a run that ends first is tried again.
        var interrupted = 0
        for _ in 0..<20 where interrupted == 0 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try slamBinary())
            process.arguments = ["verify", "--db", copy, "--scratch", scratch]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            while process.isRunning, (try FileManager.default.contentsOfDirectory(atPath: scratch)).isEmpty { usleep(200) }
            if process.isRunning { kill(process.processIdentifier, SIGINT) }
            process.waitUntilExit()
            if process.terminationStatus == 130 { interrupted += 1 } else { #expect(process.terminationStatus == 0) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "the scratch database was left")
        }
        #expect(interrupted == 1, "no run was interrupted in 20 tries")
    }

}
