/// A schedule's waiting queue. Tokens wait in join order and are activated from the front; since
/// every token of a queue shares the same TTLs, overdue tokens are always a prefix of `waiting`
/// (ordered by join time) and of `active` (ordered by activation time), so a sweep never scans.
public struct QueueState: Equatable, Sendable {
    public var scheduleId: String
    public var policy: QueuePolicy
    public var version: Int64
    /// Waiting token ids, oldest first (`appendWaiting`, `removeWaiting`).
    public private(set) var waiting: TokenLine
    /// Active token ids, earliest activation first (`appendActive`, `removeActive`).
    public private(set) var active: TokenLine
    /// Each user's live (waiting or active) token.
    public var liveByUser: [String: String]

    public init(scheduleId: String, policy: QueuePolicy, version: Int64) {
        self.scheduleId = scheduleId
        self.policy = policy
        self.version = version
        waiting = TokenLine()
        active = TokenLine()
        liveByUser = [:]
    }

    /// A token joins the back of the waiting line.
    public mutating func appendWaiting(_ tokenId: String) { waiting.append(tokenId) }
    /// A token leaves the waiting line: admitted, expired or left.
    public mutating func removeWaiting(_ tokenId: String) { waiting.remove(tokenId) }
    /// A token is activated (the line stays in activation order).
    public mutating func appendActive(_ tokenId: String) { active.append(tokenId) }
    /// An active token expires or leaves.
    public mutating func removeActive(_ tokenId: String) { active.remove(tokenId) }
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

    /// The first moment the token is past its time (the millisecond after `activeUntil`, or after
    /// `joinedAt` plus the waiting time); nil once it has ended, or for an active token without an end.
    public func endsAt(policy: QueuePolicy) -> Millis? {
        switch status {
        case .expired: return nil
        case .active: return activeUntil.map { $0 + 1 }
        case .waiting: return joinedAt + policy.waitingTtlSeconds * 1000 + 1
        }
    }

    /// The token's status at `now`, counting a token past its time as expired, swept or not.
    public func effectiveStatus(at now: Millis, policy: QueuePolicy) -> TokenStatus {
        if let end = endsAt(policy: policy), now >= end { return .expired }
        return status
    }
}

/// A line of tokens, first in first out, indexed from 0: a queue's waiting line (in join order)
/// or its active tokens (in activation order). Tokens leave mostly from the front (admitted or
/// expired), sometimes from the middle (a `LeaveQueue`).
///
/// - Each token's place is found without a scan: each has a number in the order it came
///   (increasing along the line), and the numbers of the tokens that left from behind the front
///   are kept, ascending and none below the front's, so a place is its number less the front's,
///   less those that left between them (binary search). Finding it with `firstIndex(of:)` took
///   the writer 6 ms for a repeated `JoinQueue` at the back of a 100,000-token line.
/// - The front is a start offset into the storage, compacted once the tokens gone from the
///   front are half of it: an array shifts every token behind on each departure from the front,
///   1.6 MB per admission from a 100,000-token line. A token leaving from the middle moves the
///   shorter side.
/// - Two lines are equal when they hold the same tokens in the same order (the numbering is
///   not compared: a queue loaded from the read models numbers its lines afresh).
public struct TokenLine: RandomAccessCollection, Equatable, Sendable {
    private var storage: [String] = []
    private var head = 0
    private var number: [String: Int64] = [:]
    private var nextNumber: Int64 = 0
    private var leftBehindFront: [Int64] = []

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.count - head }
    public subscript(i: Int) -> String {
        precondition(i >= 0, "index \(i) before the front of the line")
        return storage[head + i]
    }

    public func contains(_ tokenId: String) -> Bool { number[tokenId] != nil }

    /// The index of a token in the line, nil when it is not in it.
    public func position(of tokenId: String) -> Int? {
        guard let n = number[tokenId], let first = first else { return nil }
        guard let front = number[first] else {
            assertionFailure("the front of the line, \(first), has no number")
            return firstIndex(of: tokenId)
        }
        let i = Int(n - front) - (Self.countAtMost(n, in: leftBehindFront) - Self.countAtMost(front, in: leftBehindFront))
        if i >= 0, i < count, self[i] == tokenId { return i }
        assertionFailure("the line's numbering is out of step at \(tokenId)")
        return firstIndex(of: tokenId)
    }

    /// A token joins the back of the line.
    public mutating func append(_ tokenId: String) {
        // Ids are new for each join (`Queues.join`); one twice would leave the numbering behind.
        precondition(number[tokenId] == nil, "token \(tokenId) is already in the line")
        storage.append(tokenId)
        number[tokenId] = nextNumber
        nextNumber += 1
    }

    /// A token leaves the line (nothing when it is not in it).
    public mutating func remove(_ tokenId: String) {
        guard let i = position(of: tokenId) else { return }
        removeStored(at: i)
        let n = number.removeValue(forKey: tokenId)!
        if i == 0 {
            // Numbers now before the front count for no token any more.
            if let first = first, let front = number[first] {
                let k = Self.countAtMost(front, in: leftBehindFront)
                if k > 0 { leftBehindFront.removeFirst(k) }
            } else {
                leftBehindFront.removeAll()
            }
        } else {
            leftBehindFront.insert(n, at: Self.countAtMost(n, in: leftBehindFront))
        }
    }

    /// Moves the shorter side: the tokens ahead of `i` (then the front moves up) or those behind.
    private mutating func removeStored(at i: Int) {
        precondition(i >= 0 && i < count, "index \(i) outside the line")
        guard i < count / 2 || i == 0 else {
            storage.remove(at: head + i)
            return
        }
        var j = head + i
        while j > head {
            storage[j] = storage[j - 1]
            j -= 1
        }
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    /// How many of the ascending `numbers` are at most `n` (binary search).
    private static func countAtMost(_ n: Int64, in numbers: [Int64]) -> Int {
        var low = 0, high = numbers.count
        while low < high {
            let mid = (low + high) / 2
            if numbers[mid] <= n { low = mid + 1 } else { high = mid }
        }
        return low
    }

    public static func == (a: TokenLine, b: TokenLine) -> Bool { a.elementsEqual(b) }
}
