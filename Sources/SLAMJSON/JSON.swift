#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// A parsed JSON value, strict enough for a wire protocol: integers are kept exact when they fit
/// in 64 bits, objects keep their members in order, and strings are valid Unicode.
public enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// An integer literal that fits in `Int64` (no fraction, no exponent).
    case int(Int64)
    /// Any other number: a fraction, an exponent, or an integer too large for `Int64`.
    case double(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)
}

/// A JSON object's members in their order. Lookups scan linearly: wire objects have a handful of
/// members, and a scan over a small array beats hashing. A repeated name keeps its last value
/// (in its first place). Names are compared by their UTF-8 bytes, as RFC 8259 compares them, not
/// by Swift's `String ==`, which takes canonically equivalent spellings as equal: `"\u00e9"` and
/// `"e\u0301"` are two names, and `"idempotency\u212Aey"` (KELVIN SIGN) is not `idempotencyKey`.
public struct JSONObject: Equatable, Sendable, ExpressibleByDictionaryLiteral {
    public private(set) var members: [(key: String, value: JSON)]

    public init() { members = [] }
    /// Past 16 members the repeated names are found by hashing, so that building an object of
    /// thousands of names costs one pass, not a scan per name: a `RegisterUser` whose 64 KiB body
    /// held 6,500 names took 140-180 ms of the ROUTER thread (every other request waiting), now
    /// 6-8 ms end to end (release build, `ipc://`).
    public init(_ members: [(String, JSON)]) {
        self.members = []
        self.members.reserveCapacity(members.count)
        guard members.count > 16 else {
            for (k, v) in members { self[k] = v }
            return
        }
        var index: [[UInt8]: Int] = [:]
        index.reserveCapacity(members.count)
        for (k, v) in members {
            let bytes = Array(k.utf8)
            if let i = index[bytes] {
                self.members[i].value = v
            } else {
                index[bytes] = self.members.count
                self.members.append((k, v))
            }
        }
    }
    public init(dictionaryLiteral elements: (String, JSON)...) { self.init(elements) }

    public subscript(key: String) -> JSON? {
        get {
            for m in members where Self.sameName(m.key, key) { return m.value }
            return nil
        }
        set {
            if let i = members.firstIndex(where: { Self.sameName($0.key, key) }) {
                if let v = newValue { members[i].value = v } else { members.remove(at: i) }
            } else if let v = newValue {
                members.append((key, v))
            }
        }
    }

    /// Byte equality (not `==`, which takes canonically equivalent spellings as equal): the
    /// lengths, then the contiguous UTF-8 bytes compared at once. Comparing them one by one
    /// through the `UTF8View` after `==` was 8% of the ROUTER thread's instructions.
    @inline(__always)
    static func sameName(_ a: String, _ b: String) -> Bool {
        let n = a.utf8.count
        guard n == b.utf8.count else { return false }
        var a = a, b = b
        return a.withUTF8 { pa in b.withUTF8 { pb in n == 0 || memcmp(pa.baseAddress!, pb.baseAddress!, n) == 0 } }
    }

    public var count: Int { members.count }
    public var keys: [String] { members.map(\.key) }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.members.count == b.members.count else { return false }
        for m in a.members where b[m.key] != m.value { return false }
        return true
    }
}

extension JSON {
    public subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    /// The value as a 64-bit integer: an `.int`, or a double with no fractional part that fits.
    /// The parser makes every number whose written value is an integer within Int64 an `.int`
    /// (`1.0` is 1, as JSON Schema's `integer` type says), so a parsed `.double` that passes here
    /// is a non-integer a double rounded (`1.0000000000000001`): the body fields refuse every
    /// `.double`, and this reads only what the server wrote.
    public var int64Value: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d):
            // Strictly above -2^63: an integer literal just below Int64.min rounds to exactly -2^63.
            guard d.isFinite, d.rounded(.towardZero) == d, d > -9.223372036854775808e18, d < 9.223372036854775808e18
            else { return nil }
            return Int64(d)
        default: return nil
        }
    }
}
