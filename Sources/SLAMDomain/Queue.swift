/// A schedule's waiting queue. Tokens wait in join order and are activated from the front; since
/// every token of a queue shares the same TTLs, overdue tokens are always a prefix of `waiting`
/// (ordered by join time) and of `active` (ordered by activation time), so a sweep never scans.
public struct QueueState: Equatable, Sendable {
    public var scheduleId: String
    public var policy: QueuePolicy
    public var version: Int64
    /// Waiting token ids, oldest first.
    public var waiting: [String]
    /// Active token ids, earliest activation first.
    public var active: [String]
    /// Each user's live (waiting or active) token.
    public var liveByUser: [String: String]

    public init(scheduleId: String, policy: QueuePolicy, version: Int64) {
        self.scheduleId = scheduleId
        self.policy = policy
        self.version = version
        waiting = []
        active = []
        liveByUser = [:]
    }
}

public struct TokenState: Equatable, Sendable {
    public var ref: TokenRef
    public var status: TokenStatus
    public var joinedAt: Millis
    public var activeUntil: Millis?
    public init(ref: TokenRef, status: TokenStatus, joinedAt: Millis, activeUntil: Millis?) {
        self.ref = ref
        self.status = status
        self.joinedAt = joinedAt
        self.activeUntil = activeUntil
    }

    /// The token's status at `now`, counting a token past its time as expired, swept or not.
    public func effectiveStatus(at now: Millis, policy: QueuePolicy) -> TokenStatus {
        switch status {
        case .expired: return .expired
        case .active: return now > (activeUntil ?? now) ? .expired : .active
        case .waiting: return now > joinedAt + policy.waitingTtlSeconds * 1000 ? .expired : .waiting
        }
    }
}
