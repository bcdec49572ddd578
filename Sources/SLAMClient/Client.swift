import SLAMJSON
import ZMQ

/// A reply as a client sees it.
public struct Reply: Sendable {
    public let header: JSONObject
    public let body: JSON
    public let rawHeader: [UInt8]
    public let rawBody: [UInt8]

    public var ok: Bool { header["ok"]?.boolValue ?? false }
    public var requestId: String? { header["requestId"]?.stringValue }
    public var position: Int64? { header["position"]?.int64Value }
    public var replayed: Bool? { header["replayed"]?.boolValue }
    /// The error code when `ok` is false.
    public var code: String? { ok ? nil : body["code"]?.stringValue }
}

public struct ClientError: Error, CustomStringConvertible {
    public let message: String
    /// No reply came within the time allowed (the server may not be up yet); otherwise the reply
    /// itself was wrong (not a SLAM/1 reply).
    public let timedOut: Bool
    public init(_ message: String, timedOut: Bool = false) {
        self.message = message
        self.timedOut = timedOut
    }
    public var description: String { message }
}

/// A SLAM client over one DEALER socket, for the CLI, the benchmark and tests. It pipelines:
/// `send` many requests, then `receive` replies in any order, matching them by `requestId`.
/// Like every ZeroMQ socket it belongs to the thread that uses it.
public final class SLAMClient: @unchecked Sendable {
    public let socket: ZMQSocket
    private let context: ZMQContext
    private var counter: UInt64 = 0
    private let prefix: String

    public init(endpoint: String, context: ZMQContext? = nil) throws {
        self.context = try context ?? ZMQContext()
        socket = try self.context.socket(.dealer)
        try socket.setLinger(ms: 0)
        try socket.connect(endpoint)
        prefix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    public func close() { socket.close() }

    /// A fresh request id.
    public func nextRequestId() -> String {
        counter += 1
        return prefix + "-" + String(counter)
    }

    /// Sends one request; returns its requestId.
    @discardableResult
    public func send(_ type: String, body: [UInt8], key: String? = nil, requestId: String? = nil,
                     deadline: Int64? = nil) throws -> String {
        let id = requestId ?? nextRequestId()
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.field("type", type)
        w.field("requestId", id)
        if let key { w.field("idempotencyKey", key) }
        if let deadline { w.field("deadline", deadline) }
        w.endObject()
        try socket.send([[], Array("SLAM/1".utf8), w.bytes, body])
        return id
    }

    @discardableResult
    public func send(_ type: String, _ body: JSON, key: String? = nil, requestId: String? = nil,
                     deadline: Int64? = nil) throws -> String {
        try send(type, body: Array(body.serialized.utf8), key: key, requestId: requestId, deadline: deadline)
    }

    /// The next reply, or nil when none came within `timeoutMs`.
    public func receive(timeoutMs: Int = 10_000) throws -> Reply? {
        var items = [ZMQPollItem.socket(socket)]
        if try zmqPoll(&items, timeoutMs: timeoutMs) == 0 || !items[0].isReadable {
            // A signal may interrupt the poll; the caller decides whether to wait again.
            guard let frames = try socket.receive(dontWait: true) else { return nil }
            return try Self.parse(frames)
        }
        guard let frames = try socket.receive(dontWait: true) else { return nil }
        return try Self.parse(frames)
    }

    /// Sends one request and waits for its reply.
    public func call(_ type: String, _ body: JSON = .object([:]), key: String? = nil, deadline: Int64? = nil,
                     timeoutMs: Int = 10_000) throws -> Reply {
        let id = try send(type, body, key: key, deadline: deadline)
        while true {
            guard let reply = try receive(timeoutMs: timeoutMs) else {
                throw ClientError("no reply to \(type) within \(timeoutMs) ms", timedOut: true)
            }
            if reply.requestId == id { return reply }
        }
    }

    public static func parse(_ frames: [[UInt8]]) throws -> Reply {
        guard frames.count == 4 else { throw ClientError("malformed reply: \(frames.count) frames, not 4") }
        guard frames[0].isEmpty else { throw ClientError("malformed reply: its first frame is not empty") }
        guard frames[1] == Array("SLAM/1".utf8) else {
            let protocolFrame = String(decoding: frames[1].prefix(32), as: UTF8.self)
            throw ClientError("malformed reply: its protocol frame is \"\(protocolFrame)\", not \"SLAM/1\"")
        }
        let header: JSON, body: JSON
        do { header = try JSONParser.parse(frames[2]) } catch { throw ClientError("malformed reply: its header is not JSON (\(error))") }
        guard let fields = header.objectValue else { throw ClientError("malformed reply: its header is not a JSON object") }
        do { body = try JSONParser.parse(frames[3]) } catch { throw ClientError("malformed reply: its body is not JSON (\(error))") }
        return Reply(header: fields, body: body, rawHeader: frames[2], rawBody: frames[3])
    }
}
