import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import ZMQ

/// A real server on real sockets for tests: a fresh database and `ipc://` endpoints in a new
/// temporary folder, so parallel tests never collide on ports.
public final class TestServer: @unchecked Sendable {
    public let server: Server
    public let directory: URL
    public let commandsEndpoint: String
    public let eventsEndpoint: String
    public let context: ZMQContext

    public init(clock: Clock = SystemClock(), configure: (inout ServerConfig) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("slam-test-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = ServerConfig.forTests(in: directory)
        configure(&config)
        server = try Server(config: config, clock: clock)
        (commandsEndpoint, eventsEndpoint) = try server.start()
        context = try ZMQContext()
    }

    /// A new DEALER client connected to the server.
    public func client() throws -> SLAMClient { try SLAMClient(endpoint: commandsEndpoint, context: context) }

    /// Stops the server gracefully and removes its folder.
    public func shutdown(removeFiles: Bool = true) {
        server.stop()
        server.wait()
        context.terminate()
        if removeFiles { try? FileManager.default.removeItem(at: directory) }
    }
}

/// Given/when/then helpers over a client: each returns the reply, and the `must` variants fail
/// loudly when the reply is not ok.
public struct Scenario {
    public let client: SLAMClient
    public init(_ client: SLAMClient) { self.client = client }

    public func call(_ type: String, _ body: JSONObject = [:], key: String? = nil) throws -> Reply {
        let needsKey = Wire.commandTypes.contains(type)
        return try client.call(type, .object(body), key: key ?? (needsKey ? UUID().uuidString : nil))
    }

    public func must(_ type: String, _ body: JSONObject = [:], key: String? = nil) throws -> JSON {
        let r = try call(type, body, key: key)
        guard r.ok else { throw ClientError("\(type) failed: \(String(decoding: r.rawBody, as: UTF8.self))") }
        return r.body
    }

    public func registerUser(_ name: String = "fan", charge: Int64 = 0) throws -> String {
        let userId = try must("RegisterUser", ["name": .string(name)])["userId"]!.stringValue!
        if charge > 0 { _ = try must("ChargePoints", ["userId": .string(userId), "amount": .int(charge)]) }
        return userId
    }

    /// A concert and a schedule whose reservation window is open now (by the server's clock
    /// `now`), `seats` seats at `price` in one section unless `sections` is given.
    public func openSchedule(now: Millis, seats: Int = 10, price: Int64 = 1000, sections: [JSON]? = nil,
                             extra: JSONObject = [:]) throws -> String {
        let concertId = try must("CreateConcert", ["name": "Concert", "artist": "Artist"])["concertId"]!.stringValue!
        var body: JSONObject = [
            "concertId": .string(concertId),
            "startsAt": .string(RFC3339.format(now + 7 * 86_400_000)),
            "reservationOpensAt": .string(RFC3339.format(now - 3_600_000)),
            "reservationClosesAt": .string(RFC3339.format(now + 86_400_000)),
            "sections": .array(sections ?? [.object(["name": "A", "seatCount": .int(Int64(seats)), "price": .int(price)])]),
        ]
        for m in extra.members { body[m.key] = m.value }
        return try must("ScheduleConcert", body)["scheduleId"]!.stringValue!
    }
}

extension ServerConfig {
    /// A configuration for tests: the database and `ipc://` endpoints inside `directory`, so
    /// parallel tests never collide on ports.
    public static func forTests(in directory: URL) -> ServerConfig {
        var config = ServerConfig()
        config.dbPath = directory.appendingPathComponent("slam.sqlite").path
        config.commandsEndpoint = "ipc://" + directory.appendingPathComponent("commands").path
        config.eventsEndpoint = "ipc://" + directory.appendingPathComponent("events").path
        return config
    }
}

/// Executables the tests run as child processes.
public enum TestBinaries {
    /// The `slam` executable: `$SLAM_BIN` when set (nil if it is not an executable file), else
    /// the nearest executable file named `slam` in the test binary's folder or one above it
    /// (SwiftPM builds both into `.build/<triple>/debug/`).
    public static func slam() -> String? {
        let fm = FileManager.default
        func usable(_ path: String) -> Bool {
            var isDirectory: ObjCBool = false
            return fm.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue && fm.isExecutableFile(atPath: path)
        }
        if let bin = ProcessInfo.processInfo.environment["SLAM_BIN"], !bin.isEmpty { return usable(bin) ? bin : nil }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("slam").path
            if usable(candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }
}
