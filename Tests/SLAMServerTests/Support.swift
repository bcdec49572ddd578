import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

/// How long any single reply may take before a test gives up: a safety net for a loaded 2-core
/// machine, never a synchronization.
let replyTimeoutMs = 30_000

/// Runs `body` against a fresh server, always shutting it down (and closing `body`'s clients
/// first: they must be closed before the shared context terminates).
func withServer(clock: Clock = SystemClock(), configure: (inout ServerConfig) -> Void = { _ in },
                _ body: (TestServer) throws -> Void) throws {
    let server = try TestServer(clock: clock, configure: configure)
    defer { server.shutdown() }
    try body(server)
}

/// Starts a new server on `config` (a restart on the same database, after the first one
/// stopped), runs `body` with a client of it, then closes the client and stops the server.
func withRestartedServer(config: ServerConfig, clock: Clock = SystemClock(), _ body: (SLAMClient) throws -> Void) throws {
    let restarted = try Server(config: config, clock: clock)
    _ = try restarted.start()
    defer {
        restarted.stop()
        restarted.wait()
    }
    let context = try ZMQContext()
    defer { context.terminate() }
    let c = try SLAMClient(endpoint: config.commandsEndpoint, context: context)
    defer { c.close() }
    try body(c)
}

extension TestServer {
    /// A client and its scenario helpers; the caller closes it (`defer { c.close() }`).
    func scenario() throws -> (SLAMClient, Scenario) {
        let c = try client()
        return (c, Scenario(c))
    }
}

/// The request frames a DEALER sends: `["", "SLAM/1", header, body]`.
func requestFrames(header: String, body: String) -> [[UInt8]] {
    [[], Array("SLAM/1".utf8), Array(header.utf8), Array(body.utf8)]
}

/// A header object serialized, for hand-made requests.
func header(type: String, requestId: String, key: String? = nil) -> String {
    var o: JSONObject = ["type": .string(type), "requestId": .string(requestId)]
    if let key { o["idempotencyKey"] = .string(key) }
    return JSON.object(o).serialized
}

/// Waits for replies to every id in `ids` (any order), failing on a reply to anything else or on
/// a second reply to the same id.
func collect(_ client: SLAMClient, _ ids: [String], timeoutMs: Int = replyTimeoutMs) throws -> [String: Reply] {
    var wanted = Set(ids)
    var out: [String: Reply] = [:]
    while !wanted.isEmpty {
        guard let r = try client.receive(timeoutMs: timeoutMs) else {
            throw ClientError("\(wanted.count) of \(ids.count) replies missing after \(timeoutMs) ms")
        }
        guard let id = r.requestId, wanted.remove(id) != nil else {
            throw ClientError("unexpected reply \(String(decoding: r.rawHeader, as: UTF8.self)) "
                              + String(decoding: r.rawBody, as: UTF8.self))
        }
        out[id] = r
    }
    return out
}

/// The store's counters from GetStats.
struct Stats: Equatable, CustomStringConvertible {
    let position: Int64
    let commands: Int64
    let users: Int64
    let headSeq: Int64
    var description: String { "position \(position), commands \(commands), users \(users), headSeq \(headSeq)" }
}

func stats(_ s: Scenario) throws -> Stats {
    let b = try s.must("GetStats")
    return Stats(position: b["position"]!.int64Value!, commands: b["commands"]!.int64Value!,
                 users: b["users"]!.int64Value!, headSeq: b["headSeq"]!.int64Value!)
}

extension Reply {
    var details: JSON? { body["details"] }
    var field: String? { body["details"]?["field"]?.stringValue }
    var bodyText: String { String(decoding: rawBody, as: UTF8.self) }
    var headerText: String { String(decoding: rawHeader, as: UTF8.self) }
}

extension JSON {
    var string: String? { stringValue }
    var int: Int64? { int64Value }
    var array: [JSON] { arrayValue ?? [] }
    subscript(index: Int) -> JSON? {
        guard let a = arrayValue, a.indices.contains(index) else { return nil }
        return a[index]
    }
}

/// Polls `check` (each call a real round trip) until it returns true; the timeout is a safety net.
func eventually(timeoutMs: Int = replyTimeoutMs, _ check: () throws -> Bool) throws -> Bool {
    let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
    while Date() < deadline {
        if try check() { return true }
    }
    return try check()
}
