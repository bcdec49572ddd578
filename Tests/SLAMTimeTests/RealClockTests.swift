import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

/// The `slam` executable built beside the tests (see `TestBinaries.slam()`).
let slamBinary: String? = TestBinaries.slam()

/// `slam serve` as a child process on ephemeral loopback ports.
final class ServeProcess {
    let process = Process()
    let directory: URL
    let commands: String
    let events: String
    private let stdout = Pipe()
    private let stderr = Pipe()

    init(binary: String, arguments: [String]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("slam-serve-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--db", directory.appendingPathComponent("slam.sqlite").path,
                             "--commands", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*"] + arguments
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // The ready line: "SLAM ready commands=<endpoint> events=<endpoint>" (read until newline
        // or end of file, which comes when the server fails to start).
        var line: [UInt8] = []
        let handle = stdout.fileHandleForReading
        while true {
            let chunk = handle.readData(ofLength: 1)
            if chunk.isEmpty || chunk.first == UInt8(ascii: "\n") { break }
            line.append(contentsOf: chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        let fields = Dictionary(text.split(separator: " ").compactMap { part -> (String, String)? in
            let kv = part.split(separator: "=", maxSplits: 1)
            return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
        }, uniquingKeysWith: { a, _ in a })
        guard text.hasPrefix("SLAM ready"), let c = fields["commands"], let e = fields["events"] else {
            process.terminate()
            process.waitUntilExit()
            let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ClientError("slam serve did not start: \(text) \(err)")
        }
        commands = c
        events = e
    }

    /// SIGTERM, then wait: a graceful stop exits 0.
    func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
        return process.terminationStatus
    }
}

/// Holds expire by the real clock: the sweep records an unpaid hold's expiry within a second of
/// its `expiresAt`, the seats come back, and the HoldExpired event is published.
@Suite("Hold expiry, real clock")
struct RealClockTests {
    /// The server as a subprocess, started with `--hold-ttl 2`.
    @Test(.enabled(if: slamBinary != nil, "the slam executable was not found (set SLAM_BIN)"))
    func unpaidHoldExpiresInASubprocessServer() throws {
        let serve = try ServeProcess(binary: slamBinary!, arguments: ["--hold-ttl", "2"])
        defer {
            let code = serve.stop()
            #expect(code == 0, "slam serve exited \(code) on SIGTERM")
        }
        try checkRealExpiry(commands: serve.commands, events: serve.events, holdTtl: 2_000)
    }

    /// The same in-process, `holdTtl = 2000`.
    @Test func unpaidHoldExpiresInProcess() throws {
        let ts = try TestServer { $0.holdTtl = 2_000 }
        defer { ts.shutdown() }
        try checkRealExpiry(commands: ts.commandsEndpoint, events: ts.eventsEndpoint, holdTtl: 2_000)
    }

    private func checkRealExpiry(commands: String, events: String, holdTtl: Millis) throws {
        let context = try ZMQContext()
        defer { context.terminate() }
        let sub = try context.socket(.sub)
        defer { sub.close() }
        try sub.setLinger(ms: 0)
        try sub.subscribe("reservation.HoldExpired")
        try sub.connect(events)
        let client = try SLAMClient(endpoint: commands, context: context)
        defer { client.close() }
        let s = Scenario(client)

        let alice = try s.registerUser("alice", charge: 10_000)
        let now = SystemClock().now()
        let scheduleId = try s.openSchedule(now: now, seats: 4, price: 1_000)
        let paidId = try #require(try hold(s, alice, scheduleId, [1]).body["reservationId"]?.string)
        _ = try s.must("PayReservation", ["userId": .string(alice), "reservationId": .string(paidId)])
        let heldAt = SystemClock().now()
        let held = try hold(s, alice, scheduleId, [2, 3])
        #expect(held.ok, "\(held.text)")
        let reservationId = try #require(held.body["reservationId"]?.string)
        let expiresAt = try #require(RFC3339.parse(held.body["expiresAt"]?.string ?? ""))
        #expect(expiresAt >= heldAt + holdTtl && expiresAt <= SystemClock().now() + holdTtl)

        // Poll (never a fixed sleep) until the reservation is EXPIRED and its seats AVAILABLE.
        try pollUntil("reservation \(reservationId) EXPIRED") { try reservation(s, reservationId)["status"] == "EXPIRED" }
        let seenAt = SystemClock().now()
        let seats = try seatStatuses(s, scheduleId)
        #expect(seats[2] == "AVAILABLE" && seats[3] == "AVAILABLE")
        #expect(seats[1] == "SOLD" && seats[4] == "AVAILABLE")
        #expect(try reservation(s, paidId)["status"] == "CONFIRMED")
        // "Within about 3 s" of the hold (generous for a loaded machine; the poll itself waits up to 30 s).
        #expect(seenAt - heldAt < holdTtl + 3_000, "seen expired \(seenAt - heldAt) ms after the hold")

        // The recorded expiry: system:expiry, at most one second after expiresAt.
        let recorded = try readEvents(s, category: "reservation").filter { $0.type == "HoldExpired" }
        #expect(recorded.count == 1)
        let event = try #require(recorded.first)
        #expect(event.body["reservationId"]?.string == reservationId)
        #expect(event.causationId == "system:expiry")
        #expect(event.occurredAt > expiresAt)
        #expect(event.occurredAt - expiresAt <= 1_000, "recorded \(event.occurredAt - expiresAt) ms after expiresAt")

        // Published on the PUB socket.
        let published = try poll("HoldExpired published") { () -> [[UInt8]]? in
            var items = [ZMQPollItem.socket(sub)]
            guard try zmqPoll(&items, timeoutMs: 200) > 0 else { return nil }
            return try sub.receive(dontWait: true)
        }
        #expect(published.count == 3)
        #expect(String(decoding: published[0], as: UTF8.self) == "reservation.HoldExpired")
        let header = try JSONParser.parse(published[1])
        let body = try JSONParser.parse(published[2])
        #expect(header["causationId"]?.string == "system:expiry")
        #expect(header["type"]?.string == "HoldExpired")
        #expect(body["reservationId"]?.string == reservationId)
        #expect(body["seatNumbers"] == [2, 3])

        #expect(try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(reservationId)]).code
                == "HOLD_EXPIRED")
    }
}
