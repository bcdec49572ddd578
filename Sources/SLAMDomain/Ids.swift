/// Makes new ids. Ids are strings that sort by creation time: a prefix naming the kind
/// (`usr_`, `con_`, `sch_`, `res_`, `tok_`) then a ULID-style 26-character Crockford base32
/// text whose first 10 characters are the creation time in milliseconds.
public protocol IdGenerator {
    mutating func next(_ kind: IdKind, at now: Millis) -> String
}

public enum IdKind: String, Sendable {
    case user = "usr", concert = "con", schedule = "sch", reservation = "res", token = "tok", store = "st"
}

/// Time-sortable ids, monotonic within a millisecond: the 80 low bits start random for each new
/// millisecond and count up within it, so ids made in one process never collide or go backwards.
public struct SortableIdGenerator: IdGenerator {
    private var lastMillis: Millis = -1
    private var high: UInt16 = 0
    private var low: UInt64 = 0
    private var rng: SystemRandomNumberGenerator

    public init() { rng = SystemRandomNumberGenerator() }

    public mutating func next(_ kind: IdKind, at now: Millis) -> String {
        if now > lastMillis {
            lastMillis = now
            high = UInt16.random(in: 0...0x7FFF, using: &rng)
            low = UInt64.random(in: 0...UInt64.max, using: &rng)
        } else {
            let (l, o) = low.addingReportingOverflow(1)
            low = l
            if o { high &+= 1 }
        }
        return kind.rawValue + "_" + Self.encode(time: UInt64(max(lastMillis, 0)), high: high, low: low)
    }

    private static let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func encode(time: UInt64, high: UInt16, low: UInt64) -> String {
        var out = [UInt8](repeating: 0, count: 26)
        var t = time
        for k in stride(from: 9, through: 0, by: -1) { out[k] = alphabet[Int(t & 31)]; t >>= 5 }
        // 80 random bits: 16 high, 64 low, written as 16 base32 digits.
        var lo = low
        var hi = UInt64(high)
        for k in stride(from: 25, through: 10, by: -1) {
            out[k] = alphabet[Int(lo & 31)]
            lo = (lo >> 5) | ((hi & 31) << 59)
            hi >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Predictable ids for tests: `usr_1`, `usr_2`, ...
public struct SequentialIdGenerator: IdGenerator {
    private var counters: [IdKind: Int] = [:]
    public init() {}
    public mutating func next(_ kind: IdKind, at now: Millis) -> String {
        let n = counters[kind, default: 0] + 1
        counters[kind] = n
        return "\(kind.rawValue)_\(n)"
    }
}
