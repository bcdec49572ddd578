/// The read models `slam projections rebuild --projection NAME` knows, each the tables it owns.
/// Every one is a fold of the whole log; the names are the tables', except `queue`, which is the
/// two queue tables together (their counters and tokens are one fold: a token's `wait_seq` is its
/// queue's `waits` when it joined).
public enum ReadModel: String, CaseIterable, Sendable, Hashable {
    case users
    case pointHistory = "point_history"
    case concerts
    case schedules
    case seats
    case reservations
    case queue

    /// The tables this read model owns.
    public var tables: [String] {
        switch self {
        case .users: return ["users", "user_count"]
        case .pointHistory: return ["point_history"]
        case .concerts: return ["concerts"]
        case .schedules: return ["schedules"]
        case .seats: return ["seats"]
        case .reservations: return ["reservations"]
        case .queue: return ["queue_tokens", "queues"]
        }
    }

    /// The event types whose fold this read model needs (a rebuild of only this model reads no
    /// other type from the log).
    public var eventTypes: [String] {
        let wallet = ["UserRegistered", "PointsCharged", "PointsUsed", "PointsRefunded"]
        let reservation = ["SeatsHeld", "ReservationConfirmed", "HoldExpired", "HoldReleased", "ReservationCancelled"]
        switch self {
        case .users, .pointHistory: return wallet
        case .concerts: return ["ConcertCreated"]
        case .schedules: return ["ConcertScheduled", "ScheduleSoldOut", "ScheduleReopened"] + reservation
        case .seats: return ["ConcertScheduled"] + reservation
        case .reservations: return reservation
        case .queue: return ["ConcertScheduled", "QueueJoined", "QueueTokenActivated", "QueueTokenExpired", "QueueLeft"]
        }
    }

    /// The model named `name` (its name, or one of its tables' names), or nil.
    public static func named(_ name: String) -> ReadModel? {
        let n = name.lowercased().replacingOccurrences(of: "-", with: "_")
        if let m = ReadModel(rawValue: n) { return m }
        return allCases.first { $0.tables.contains(n) }
    }

    /// Every table of the given models, in `Projector.tables` order.
    public static func tables(of models: Set<ReadModel>) -> [String] {
        let wanted = Set(models.flatMap(\.tables))
        return Projector.tables.filter { wanted.contains($0) }
    }
}
