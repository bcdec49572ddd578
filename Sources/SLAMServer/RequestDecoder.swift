import SLAMDomain
import SLAMJSON
import ZMQ

/// Checks a request's frames, header and body JSON in PROTOCOL.md section 2's order (size; frames
/// and protocol; header JSON and fields; type; body JSON; idempotencyKey present) and splits it
/// into a command for the writer or a query for a reader.
struct RequestDecoder {
    let maxRequestBytes: Int

    enum Decoded {
        case command(CommandJob)
        case query(QueryJob)
        /// Refused before execution: reply at once.
        case refused(Rejection, requestId: String?, isCommand: Bool)
    }

    /// A request refused for its size, frames or protocol, read where the header belongs (the
    /// third frame after the routing id) when that frame is a JSON object: its string `requestId` is
    /// echoed ("absent only when the request had none readable", PROTOCOL.md section 2, so a
    /// pipelining client can still match the error to its request), and a `type` naming a
    /// command adds `replayed: false` (section 3: on every reply to a command).
    /// A header that is JSON the reader refuses for its limits (an unknown field nested too deep,
    /// a number beyond a double, a lone surrogate) still has a readable `requestId` and `type`,
    /// read leniently (`JSONParser.topLevelStrings`).
    static func readable(_ frames: [[UInt8]]) -> (requestId: String?, isCommand: Bool) {
        guard frames.count >= 4 else { return (nil, false) }
        if let header = (try? JSONParser.parse(frames[3]))?.objectValue {
            return (header["requestId"]?.stringValue, namesCommand(header))
        }
        return readableLeniently(frames[3])
    }

    /// A header `JSONParser.parse` refused, read leniently.
    static func readableLeniently(_ header: [UInt8]) -> (requestId: String?, isCommand: Bool) {
        guard let strings = JSONParser.topLevelStrings(header) else { return (nil, false) }
        return (strings["requestId"], strings["type"].map(Wire.commandTypes.contains) ?? false)
    }

    /// Whether the header's `type` is a command's name, known before the header's other fields
    /// are checked.
    static func namesCommand(_ header: JSONObject) -> Bool {
        header["type"]?.stringValue.map(Wire.commandTypes.contains) ?? false
    }

    private func refusedUnparsed(_ r: Rejection, _ frames: [[UInt8]]) -> Decoded {
        let (requestId, isCommand) = Self.readable(frames)
        return .refused(r, requestId: requestId, isCommand: isCommand)
    }

    /// The frames of a request the ROUTER's thread keeps (routing id, delimiter, protocol,
    /// header, body): past them a message is refused for its frame count, which it still knows.
    static let framesKept = 5

    /// A message as the ROUTER received it, routing id first, its first `framesKept` frames
    /// (or more) kept.
    func decode(_ message: ZMQSocket.Received) -> Decoded {
        let frames = message.frames, frameCount = message.frameCount
        let peer = frames[0]
        let total = message.byteCount - peer.count
        if total > maxRequestBytes {
            // Not parsed, but for its header when that frame alone is within the limit: its
            // `requestId` lets a client that matches replies by it (any pipelining one) receive
            // the refusal, as for a request refused for its frames or protocol.
            let tooLarge = Rejection(.payloadTooLarge, "the request is \(total) bytes; the limit is \(maxRequestBytes)",
                                     details: ["limit": .int(Int64(maxRequestBytes))])
            guard frames.count >= 4, frames[3].count <= maxRequestBytes else {
                return .refused(tooLarge, requestId: nil, isCommand: false)
            }
            return refusedUnparsed(tooLarge, frames)
        }
        guard frameCount == 5 else {
            return refusedUnparsed(Rejection(.badRequest, "a request is 4 frames (\"\", \"SLAM/1\", header, body); got \(frameCount - 1)",
                                             details: ["frames": .int(Int64(frameCount - 1))]), frames)
        }
        guard frames[1].isEmpty else {
            return refusedUnparsed(Rejection(.badRequest, "frame 0 must be the empty delimiter"), frames)
        }
        guard frames[2] == Wire.protocolFrame else {
            return refusedUnparsed(Rejection(.unsupportedProtocol, "this server speaks SLAM/1",
                                             details: ["supported": .array([.string("SLAM/1")])]), frames)
        }
        let header: JSONObject
        do {
            guard let h = try JSONParser.parse(frames[3]).objectValue else {
                return .refused(.badField("header", "the header must be a JSON object"), requestId: nil, isCommand: false)
            }
            header = h
        } catch {
            // Parsed once already: read leniently now, not parsed again.
            let (requestId, isCommand) = Self.readableLeniently(frames[3])
            return .refused(.badField("header", "the header is not valid JSON (UTF-8) this server can read: \(error)"),
                            requestId: requestId, isCommand: isCommand)
        }
        // A requestId that is a string is echoed even when it breaks the length rule; a reply to a
        // header naming a command carries `replayed` (section 3), whatever else is refused.
        let echoId = header["requestId"]?.stringValue
        let isCommand = Self.namesCommand(header)
        func refuse(_ r: Rejection) -> Decoded { .refused(r, requestId: echoId, isCommand: isCommand) }
        guard let requestId = echoId else {
            return refuse(.badField("header.requestId", header["requestId"] == nil ? "header.requestId is required"
                                                                                  : "header.requestId must be a string"))
        }
        guard (1...64).contains(requestId.unicodeScalars.count) else {
            return refuse(.badField("header.requestId", "header.requestId must be 1 to 64 characters"))
        }
        guard let type = header["type"]?.stringValue else {
            return refuse(.badField("header.type", header["type"] == nil ? "header.type is required" : "header.type must be a string"))
        }
        var key: String?
        if let k = header["idempotencyKey"] {
            // Without U+0000: the key is each event's causationId, which would be read back cut
            // short at the NUL (GRDB reads text as C strings).
            guard let s = k.stringValue, (1...128).contains(s.unicodeScalars.count), !s.unicodeScalars.contains("\0") else {
                return refuse(.badField("header.idempotencyKey",
                                        "header.idempotencyKey must be a string of 1 to 128 characters, without U+0000"))
            }
            key = s
        }
        var deadline: Millis?
        if let d = header["deadline"] {
            guard case .int(let ms) = d else {
                return refuse(.badField("header.deadline", "header.deadline must be an integer (Unix milliseconds)"))
            }
            deadline = ms
        }
        guard isCommand || Wire.queryTypes.contains(type) else {
            let known = Wire.commandTypes.union(Wire.queryTypes)
            let meant = type.isEmpty ? nil : known.first { $0.lowercased() == type.lowercased() }
            return refuse(Rejection(.unknownType, "no command or query is named \"\(type)\""
                                    + (meant.map { " (types are case-sensitive: \($0)?)" } ?? ""),
                                    details: ["type": .string(type)]))
        }
        let body: JSONObject
        do {
            guard let b = try JSONParser.parse(frames[4]).objectValue else {
                return refuse(.badField("body", "the body must be a JSON object ({} when empty)"))
            }
            body = b
        } catch {
            return refuse(.badField("body", "the body is not valid JSON (UTF-8): \(error)"))
        }
        if isCommand {
            guard let key else {
                return refuse(Rejection(.idempotencyKeyRequired, "\(type) is a command: header.idempotencyKey is required",
                                        details: ["field": .string("header.idempotencyKey")]))
            }
            let command: Result<Command, Rejection>
            do { command = .success(try CommandDecoder.decode(type: type, body: body)) } catch { command = .failure(error) }
            return .command(CommandJob(peer: peer, requestId: requestId, type: type, key: key, deadline: deadline,
                                       command: command, fingerprint: type + " " + JSON.object(body).canonical))
        }
        return .query(QueryJob(peer: peer, requestId: requestId, type: type, deadline: deadline, body: body))
    }
}
