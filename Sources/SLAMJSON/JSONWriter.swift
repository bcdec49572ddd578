/// Writes JSON into a byte buffer. Used on the hot path for replies and event bodies, so it
/// appends directly instead of building intermediate values.
public struct JSONWriter {
    public var bytes: [UInt8]
    private var needsComma: [Bool] = []

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    private var afterKey = false
    /// Doubles written as Swift's shortest round-trip form (`1.0`, `1e+30`), never as an integer:
    /// the canonical form's, where a double is never an integer's value (the parser makes every
    /// number whose value is an integer within Int64 an `.int`).
    fileprivate var doublesAsDoubles = false

    /// Writes a comma before a value or member name unless it is the first in its container or
    /// the value of the member name just written.
    private mutating func valuePrefix() {
        if afterKey { afterKey = false; return }
        if let last = needsComma.last {
            if last { bytes.append(UInt8(ascii: ",")) } else { needsComma[needsComma.count - 1] = true }
        }
    }

    public mutating func beginObject() { valuePrefix(); bytes.append(UInt8(ascii: "{")); needsComma.append(false) }
    public mutating func endObject() { needsComma.removeLast(); bytes.append(UInt8(ascii: "}")) }
    public mutating func beginArray() { valuePrefix(); bytes.append(UInt8(ascii: "[")); needsComma.append(false) }
    public mutating func endArray() { needsComma.removeLast(); bytes.append(UInt8(ascii: "]")) }

    /// Writes a member name; the next value written is its value.
    public mutating func key(_ k: String) {
        valuePrefix()
        writeEscaped(k)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func value(_ s: String) { valuePrefix(); writeEscaped(s) }
    public mutating func value(_ n: Int64) { valuePrefix(); writeInt(n) }
    public mutating func value(_ n: Int) { valuePrefix(); writeInt(Int64(n)) }
    public mutating func value(_ b: Bool) { valuePrefix(); bytes.append(contentsOf: b ? Array("true".utf8) : Array("false".utf8)) }
    public mutating func valueNull() { valuePrefix(); bytes.append(contentsOf: Array("null".utf8)) }
    public mutating func value(_ d: Double) {
        valuePrefix()
        bytes.append(contentsOf: Array((doublesAsDoubles && d.isFinite ? "\(d)" : JSONWriter.formatDouble(d)).utf8))
    }
    /// Writes already-serialized JSON as a value.
    public mutating func raw(_ json: [UInt8]) { valuePrefix(); bytes.append(contentsOf: json) }
    public mutating func raw(_ json: String) { valuePrefix(); bytes.append(contentsOf: json.utf8) }

    public mutating func value(_ json: JSON, sortedKeys: Bool = false) {
        switch json {
        case .null: valueNull()
        case .bool(let b): value(b)
        case .int(let i): value(i)
        case .double(let d): value(d)
        case .string(let s): value(s)
        case .array(let a):
            beginArray()
            for v in a { value(v, sortedKeys: sortedKeys) }
            endArray()
        case .object(let o):
            beginObject()
            let members = sortedKeys ? o.members.sorted { JSONWriter.precedesInUTF16($0.key, $1.key) } : o.members
            for m in members {
                key(m.key)
                value(m.value, sortedKeys: sortedKeys)
            }
            endObject()
        }
    }

    /// The canonical form's order of member names: by UTF-16 code units (RFC 8785). Compared as
    /// UTF-8 bytes up to the first difference, which is the same order when both bytes there
    /// are ASCII (the bytes before it are whole, equal scalars) and when one name is the
    /// other's start; through the UTF-16 views otherwise. Comparing every pair through the UTF-16
    /// views was a sixth of the canonical form's cost, the fingerprint of every command.
    static func precedesInUTF16(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        let order: Bool? = a.withUTF8 { pa in
            b.withUTF8 { pb in
                let n = min(pa.count, pb.count)
                var i = 0
                while i < n, pa[i] == pb[i] { i += 1 }
                if i == n { return pa.count < pb.count }
                guard pa[i] < 0x80, pb[i] < 0x80 else { return nil }
                return pa[i] < pb[i]
            }
        }
        return order ?? a.utf16.lexicographicallyPrecedes(b.utf16)
    }

    // Conveniences for `"key": value` pairs.
    public mutating func field(_ k: String, _ v: String) { key(k); value(v) }
    public mutating func field(_ k: String, _ v: Int64) { key(k); value(v) }
    public mutating func field(_ k: String, _ v: Int) { key(k); value(Int64(v)) }
    public mutating func field(_ k: String, _ v: Bool) { key(k); value(v) }
    public mutating func field(_ k: String, _ v: [Int]) {
        key(k)
        beginArray()
        for n in v { value(Int64(n)) }
        endArray()
    }

    private mutating func writeInt(_ n: Int64) {
        if n == 0 { bytes.append(UInt8(ascii: "0")); return }
        var v = n.magnitude
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var len = 0
        withUnsafeMutableBytes(of: &tmp) { p in
            while v > 0 {
                p[19 - len] = UInt8(v % 10) + 0x30
                v /= 10
                len += 1
            }
        }
        if n < 0 { bytes.append(UInt8(ascii: "-")) }
        withUnsafeBytes(of: &tmp) { p in bytes.append(contentsOf: p[(20 - len)...]) }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func writeEscaped(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        // Fast path: most strings (ids, names, codes) need no escaping; they are scanned and
        // copied from their contiguous UTF-8 storage (a closure per byte through the UTF8View
        // was a few percent of the relay's and the writer's time).
        var s = s
        let copied = s.withUTF8 { utf8 in
            for c in utf8 where c < 0x20 || c == 0x22 || c == 0x5C { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if copied {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): bytes.append(0x5C); bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C); bytes.append(0x5C)
            case 0x0A: bytes.append(0x5C); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(0x5C); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(0x5C); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20:
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30])
                bytes.append(JSONWriter.hexDigits[Int(c >> 4)])
                bytes.append(JSONWriter.hexDigits[Int(c & 0xF)])
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Integral doubles within 2^53 print as integers, so `1.0` and `1` canonicalize alike.
    static func formatDouble(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d.rounded(.towardZero) == d, abs(d) < 9.007199254740992e15 { return String(Int64(d)) }
        return "\(d)"
    }
}

extension JSON {
    /// Compact serialization, members in their order.
    public var serialized: String {
        var w = JSONWriter()
        w.value(self)
        return w.string
    }

    /// A canonical form for comparing commands: members sorted by name, no white space, numbers
    /// by their value as the parser read it: an integer within Int64 however it was written
    /// (`1`, `1.0`, `1e0` are one value), any other number as its double, never equal to an
    /// integer's (`1.0000000000000001`, which is not 1 though a double rounds it to 1, stays
    /// apart from `1`, as the body fields, which refuse it, tell them apart). Close to RFC 8785.
    public var canonical: String {
        var w = JSONWriter()
        w.doublesAsDoubles = true
        w.value(self, sortedKeys: true)
        return w.string
    }
}
