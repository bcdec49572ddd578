/// A schedule's waiting queue. Tokens wait in join order and are activated from the front; since
/// every token of a queue shares the same TTLs, overdue tokens are always a prefix of `waiting`
/// (ordered by join time) and of `active` (ordered by activation time), so a sweep never scans.
public struct QueueState: Equatable, Sendable {
    public var scheduleId: String
    public var policy: QueuePolicy
    public var version: Int64
    /// Waiting token ids, oldest first (`appendWaiting`, `removeWaiting`).
    public private(set) var waiting: WaitingLine
    /// Active token ids, earliest activation first.
    public var active: [String]
    /// Each user's live (waiting or active) token.
    public var liveByUser: [String: String]
    /// Each waiting token's number in join order (increasing along `waiting`), and the numbers
    /// of the tokens that left `waiting` behind its front (ascending, none below the front's):
    /// a token's place in the line is found from them without a scan. Finding it with
    /// `firstIndex(of:)` took the writer 6 ms for a repeated `JoinQueue` at the back of a
    /// 100,000-token line.
    private var waitingNumber: [String: Int64] = [:]
    private var nextWaitingNumber: Int64 = 0
    private var leftBehindFront: [Int64] = []

    public init(scheduleId: String, policy: QueuePolicy, version: Int64) {
        self.scheduleId = scheduleId
        self.policy = policy
        self.version = version
        waiting = WaitingLine()
        active = []
        liveByUser = [:]
    }

    /// The same queue: the numbering behind the line is not compared (a queue loaded from the
    /// read models numbers its line afresh).
    public static func == (a: QueueState, b: QueueState) -> Bool {
        a.scheduleId == b.scheduleId && a.policy == b.policy && a.version == b.version && a.waiting == b.waiting
            && a.active == b.active && a.liveByUser == b.liveByUser
    }

    /// A token joins the back of the line.
    public mutating func appendWaiting(_ tokenId: String) {
        // Ids are new for each join (`Queues.join`); one twice would leave the numbering behind.
        precondition(waitingNumber[tokenId] == nil, "token \(tokenId) is already waiting")
        waiting.append(tokenId)
        waitingNumber[tokenId] = nextWaitingNumber
        nextWaitingNumber += 1
    }

    /// The index of a waiting token in `waiting`, nil when it is not waiting.
    public func waitingIndex(of tokenId: String) -> Int? {
        guard let n = waitingNumber[tokenId], let first = waiting.first else { return nil }
        guard let front = waitingNumber[first] else {
            assertionFailure("the front of the waiting line, \(first), has no number")
            return waiting.firstIndex(of: tokenId)
        }
        let i = Int(n - front) - (Self.countAtMost(n, in: leftBehindFront) - Self.countAtMost(front, in: leftBehindFront))
        if i >= 0, i < waiting.count, waiting[i] == tokenId { return i }
        assertionFailure("the waiting line's numbering is out of step at \(tokenId)")
        return waiting.firstIndex(of: tokenId)
    }

    /// A token leaves the line: admitted, expired or left.
    public mutating func removeWaiting(_ tokenId: String) {
        guard let i = waitingIndex(of: tokenId) else { return }
        waiting.remove(at: i)
        let n = waitingNumber.removeValue(forKey: tokenId)!
        if i == 0 {
            // Numbers now before the front count for no token any more.
            if let first = waiting.first, let front = waitingNumber[first] {
                let k = Self.countAtMost(front, in: leftBehindFront)
                if k > 0 { leftBehindFront.removeFirst(k) }
            } else {
                leftBehindFront.removeAll()
            }
        } else {
            leftBehindFront.insert(n, at: Self.countAtMost(n, in: leftBehindFront))
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

/// A queue's waiting line, oldest first, indexed from 0. Tokens leave mostly from the front
/// (admitted or expired), and an array shifts every token behind on each of those: with 100,000
/// waiting that moved 1.6 MB per admission. The front is a start offset here instead, and the
/// storage is compacted once the tokens gone from the front are half of it; a token leaving
/// from the middle moves the shorter side.
public struct WaitingLine: RandomAccessCollection, Equatable, Sendable {
    private var storage: [String] = []
    private var head = 0

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.count - head }
    public subscript(i: Int) -> String {
        precondition(i >= 0, "index \(i) before the front of the waiting line")
        return storage[head + i]
    }

    mutating func append(_ tokenId: String) { storage.append(tokenId) }

    /// Moves the shorter side: the tokens ahead of `i` (then the front moves up) or those behind.
    mutating func remove(at i: Int) {
        precondition(i >= 0 && i < count, "index \(i) outside the waiting line")
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

    public static func == (a: WaitingLine, b: WaitingLine) -> Bool { a.elementsEqual(b) }
}
