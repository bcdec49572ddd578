import SLAMDomain
import SLAMJSON

/// PROTOCOL.md's names: the protocol frame and the command and query types.
public enum Wire {
    public static let protocolFrame: [UInt8] = Array("SLAM/1".utf8)
    public static let commandTypes: Set<String> = [
        "RegisterUser", "ChargePoints", "CreateConcert", "ScheduleConcert", "JoinQueue", "LeaveQueue",
        "HoldSeats", "PayReservation", "CancelReservation",
    ]
    public static let queryTypes: Set<String> = [
        "GetUser", "GetPointHistory", "ListSchedules", "GetSeatMap", "GetReservation", "ListReservations",
        "GetQueueStatus", "ReadEvents", "GetStats",
    ]

    /// A reply header `{requestId?, ok, position?, replayed?}`.
    static func replyHeader(requestId: String?, ok: Bool, position: Int64? = nil, replayed: Bool? = nil) -> [UInt8] {
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        if let requestId { w.field("requestId", requestId) }
        w.field("ok", ok)
        if let position { w.field("position", position) }
        if let replayed { w.field("replayed", replayed) }
        w.endObject()
        return w.bytes
    }

    /// An error body `{code, message, details?}`.
    static func errorBody(_ r: Rejection) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.field("code", r.code.rawValue)
        w.field("message", r.message)
        if let d = r.details {
            w.key("details")
            w.value(.object(d))
        }
        w.endObject()
        return w.bytes
    }

    static func resultBody(_ o: JSONObject) -> [UInt8] {
        var w = JSONWriter(capacity: 160)
        w.value(.object(o))
        return w.bytes
    }

    /// The frames of a reply to `peer` (the ROUTER's routing id).
    static func frames(peer: [UInt8], header: [UInt8], body: [UInt8]) -> [[UInt8]] {
        [peer, [], protocolFrame, header, body]
    }
}

/// A command on its way to the writer: shape checked up to the body's JSON; the body's fields
/// are checked by the writer after the idempotency record, as section 2's order requires.
struct CommandJob {
    let peer: [UInt8]
    let requestId: String
    let type: String
    let key: String
    let deadline: Millis?
    /// The body decoded on the ROUTER's thread (off the writer's); a bad body is refused by the
    /// writer after the idempotency check, in PROTOCOL.md section 2's order.
    let command: Result<Command, Rejection>
    /// `type` + canonical body: "the same command" of section 3.
    let fingerprint: String
}

struct QueryJob {
    let peer: [UInt8]
    let requestId: String
    let type: String
    let deadline: Millis?
    let body: JSONObject

    /// The reply refusing it OVERLOADED, saying `why` ("the server is stopping").
    func overloaded(_ why: String) -> [[UInt8]] {
        Wire.frames(peer: peer, header: Wire.replyHeader(requestId: requestId, ok: false),
                    body: Wire.errorBody(Rejection(.overloaded, why + "; retry later")))
    }
}

/// A reply ready to send from the ROUTER's thread.
struct OutgoingReply {
    let frames: [[UInt8]]
}
