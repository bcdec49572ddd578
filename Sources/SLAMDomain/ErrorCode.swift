import SLAMJSON

/// Every error code of PROTOCOL.md section 6, spelled as on the wire.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badRequest = "BAD_REQUEST"
    case unsupportedProtocol = "UNSUPPORTED_PROTOCOL"
    case unknownType = "UNKNOWN_TYPE"
    case payloadTooLarge = "PAYLOAD_TOO_LARGE"
    case idempotencyKeyRequired = "IDEMPOTENCY_KEY_REQUIRED"
    case idempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
    case deadlineExceeded = "DEADLINE_EXCEEDED"
    case overloaded = "OVERLOADED"
    case unauthorized = "UNAUTHORIZED"
    case forbidden = "FORBIDDEN"
    case userNotFound = "USER_NOT_FOUND"
    case concertNotFound = "CONCERT_NOT_FOUND"
    case scheduleNotFound = "SCHEDULE_NOT_FOUND"
    case seatNotFound = "SEAT_NOT_FOUND"
    case reservationNotFound = "RESERVATION_NOT_FOUND"
    case tokenNotFound = "TOKEN_NOT_FOUND"
    case invalidAmount = "INVALID_AMOUNT"
    case balanceLimitExceeded = "BALANCE_LIMIT_EXCEEDED"
    case insufficientBalance = "INSUFFICIENT_BALANCE"
    case invalidSchedule = "INVALID_SCHEDULE"
    case reservationWindowClosed = "RESERVATION_WINDOW_CLOSED"
    case seatUnavailable = "SEAT_UNAVAILABLE"
    case seatLimitExceeded = "SEAT_LIMIT_EXCEEDED"
    case queueTokenRequired = "QUEUE_TOKEN_REQUIRED"
    case queueTokenNotActive = "QUEUE_TOKEN_NOT_ACTIVE"
    case queueTokenExpired = "QUEUE_TOKEN_EXPIRED"
    case holdExpired = "HOLD_EXPIRED"
    case invalidState = "INVALID_STATE"
    case `internal` = "INTERNAL"
}

/// A refusal: a business rejection from a decider, or a protocol error from the server. Maps
/// one-to-one onto the wire's error body `{code, message, details?}`.
public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: ErrorCode
    public let message: String
    public let details: JSONObject?

    public init(_ code: ErrorCode, _ message: String, details: JSONObject? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// `BAD_REQUEST` naming the offending field's path in `details.field`.
    public static func badField(_ path: String, _ message: String) -> Rejection {
        Rejection(.badRequest, message, details: ["field": .string(path)])
    }
}
