/// Why a byte string is not an acceptable JSON document.
public struct JSONParseError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// A strict RFC 8259 parser over UTF-8 bytes: it rejects invalid UTF-8, trailing garbage, leading
/// zeros, lone surrogates and nesting deeper than `maxDepth`.
public struct JSONParser {
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws -> JSON {
        try bytes.withUnsafeBufferPointer { buf in
            var p = JSONParser(buf: buf, maxDepth: maxDepth)
            p.skipWhitespace()
            let value = try p.parseValue(depth: 0)
            p.skipWhitespace()
            if p.i != buf.count { throw p.error("unexpected data after the JSON value") }
            return value
        }
    }

    public static func parse(_ text: String) throws -> JSON { try parse(Array(text.utf8)) }

    /// The string-valued members of a top-level JSON object, read leniently: other values are
    /// skipped unread, so a document `parse` refuses for its limits (nesting deeper than
    /// `maxDepth`, a number beyond a double, a lone surrogate) still gives them, the last of a
    /// name given twice counting, as in `parse`. Nil when `bytes` is not an object this walk can
    /// follow. For refusals only: to echo a request's `requestId` (PROTOCOL.md section 2).
    public static func topLevelStrings(_ bytes: [UInt8]) -> [String: String]? {
        bytes.withUnsafeBufferPointer { buf in
            var p = JSONParser(buf: buf, maxDepth: 0)
            return p.lenientTopLevelStrings()
        }
    }

    private let buf: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var i = 0

    private init(buf: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.buf = buf
        self.maxDepth = maxDepth
    }

    private func error(_ m: String) -> JSONParseError { JSONParseError(message: m, offset: i) }

    private mutating func lenientTopLevelStrings() -> [String: String]? {
        skipWhitespace()
        guard i < buf.count, buf[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        var found: [String: String] = [:]
        skipWhitespace()
        if i < buf.count, buf[i] == UInt8(ascii: "}") { return found }
        while true {
            skipWhitespace()
            guard i < buf.count, buf[i] == UInt8(ascii: "\""), let key = try? parseString() else { return nil }
            skipWhitespace()
            guard i < buf.count, buf[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipWhitespace()
            let start = i
            if i < buf.count, buf[i] == UInt8(ascii: "\""), let value = try? parseString() {
                found[key] = value
            } else {
                i = start
                guard skipValue() else { return nil }
                found[key] = nil  // the last member of a name counts, and this one is no string
            }
            skipWhitespace()
            guard i < buf.count else { return nil }
            if buf[i] == UInt8(ascii: ",") { i += 1; continue }
            return buf[i] == UInt8(ascii: "}") ? found : nil
        }
    }

    /// Skips one value without reading it: brackets counted, strings passed over by their quotes.
    private mutating func skipValue() -> Bool {
        guard i < buf.count else { return false }
        switch buf[i] {
        case UInt8(ascii: "\""):
            return skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while i < buf.count {
                switch buf[i] {
                case UInt8(ascii: "\""):
                    guard skipString() else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        i += 1
                        return true
                    }
                default:
                    break
                }
                i += 1
            }
            return false
        default:
            let start = i
            while i < buf.count {
                switch buf[i] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: return i > start
                default: i += 1
                }
            }
            return false
        }
    }

    /// Passes over a string from its opening quote to just after its closing one.
    private mutating func skipString() -> Bool {
        i += 1
        while i < buf.count {
            switch buf[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""):
                i += 1
                return true
            default: i += 1
            }
        }
        return false
    }

    private mutating func skipWhitespace() {
        while i < buf.count {
            switch buf[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws -> JSON {
        guard i < buf.count else { throw error("unexpected end of input") }
        switch buf[i] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= buf.count else { throw error("unexpected end of input") }
        let w = word.utf8Start
        for k in 0..<n where buf[i + k] != w[k] { throw error("invalid literal") }
        i += n
    }

    private mutating func parseObject(depth: Int) throws -> JSON {
        if depth > maxDepth { throw error("nesting too deep") }
        i += 1
        var members: [(String, JSON)] = []
        skipWhitespace()
        if i < buf.count, buf[i] == UInt8(ascii: "}") { i += 1; return .object(JSONObject()) }
        members.reserveCapacity(8)  // a request's objects: growing from 1 was 7% of the ROUTER's instructions
        while true {
            skipWhitespace()
            guard i < buf.count, buf[i] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try parseString()
            skipWhitespace()
            guard i < buf.count, buf[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
            i += 1
            skipWhitespace()
            members.append((key, try parseValue(depth: depth)))
            skipWhitespace()
            guard i < buf.count else { throw error("unexpected end of input") }
            if buf[i] == UInt8(ascii: ",") { i += 1; continue }
            if buf[i] == UInt8(ascii: "}") { i += 1; return .object(JSONObject(members)) }
            throw error("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSON {
        if depth > maxDepth { throw error("nesting too deep") }
        i += 1
        var arr: [JSON] = []
        skipWhitespace()
        if i < buf.count, buf[i] == UInt8(ascii: "]") { i += 1; return .array(arr) }
        while true {
            skipWhitespace()
            arr.append(try parseValue(depth: depth))
            skipWhitespace()
            guard i < buf.count else { throw error("unexpected end of input") }
            if buf[i] == UInt8(ascii: ",") { i += 1; continue }
            if buf[i] == UInt8(ascii: "]") { i += 1; return .array(arr) }
            throw error("expected ',' or ']'")
        }
    }

    /// A number: `.int` when its value is exactly an integer that fits in `Int64`, however it is
    /// spelled (`12`, `1.0`, `1.2e1`), so that `1.0000000000000001` or `1e-400`, which a double
    /// would round to an integer, stay what they are: not integers.
    private mutating func parseNumber() throws -> JSON {
        let start = i
        if buf[i] == UInt8(ascii: "-") { i += 1 }
        guard i < buf.count, isDigit(buf[i]) else { throw error("invalid number") }
        let intStart = i
        if buf[i] == UInt8(ascii: "0") {
            i += 1
            if i < buf.count, isDigit(buf[i]) { throw error("leading zero in number") }
        } else {
            while i < buf.count, isDigit(buf[i]) { i += 1 }
        }
        let intEnd = i
        var fracEnd = i
        if i < buf.count, buf[i] == UInt8(ascii: ".") {
            i += 1
            guard i < buf.count, isDigit(buf[i]) else { throw error("invalid number") }
            while i < buf.count, isDigit(buf[i]) { i += 1 }
            fracEnd = i
        }
        var expStart = i
        let expEnd: Int
        if i < buf.count, buf[i] == UInt8(ascii: "e") || buf[i] == UInt8(ascii: "E") {
            i += 1
            expStart = i
            if i < buf.count, buf[i] == UInt8(ascii: "+") || buf[i] == UInt8(ascii: "-") { i += 1 }
            guard i < buf.count, isDigit(buf[i]) else { throw error("invalid number") }
            while i < buf.count, isDigit(buf[i]) { i += 1 }
        }
        expEnd = i
        if fracEnd == intEnd, expEnd == intEnd {
            if let v = parseInt64(start, i) { return .int(v) }
        } else if let v = exactInt64(negative: start != intStart, intStart: intStart, intEnd: intEnd, fracEnd: fracEnd,
                                     expStart: expStart, expEnd: expEnd) {
            return .int(v)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: buf[start..<i]), as: UTF8.self)
        // A number beyond a double's range would become infinite and be written back as null.
        guard let d = Double(text), d.isFinite else { throw error("number out of range") }
        return .double(d)
    }

    /// The exact value of a validated number with a fraction or an exponent, when it is an
    /// integer that fits in `Int64`; nil otherwise. Its digits (integer part, then fraction) times
    /// ten to the exponent less the fraction's length.
    private func exactInt64(negative: Bool, intStart: Int, intEnd: Int, fracEnd: Int, expStart: Int, expEnd: Int) -> Int64? {
        var digits: [UInt8] = []
        for k in intStart..<intEnd { digits.append(buf[k] &- 0x30) }
        if fracEnd > intEnd { for k in (intEnd + 1)..<fracEnd { digits.append(buf[k] &- 0x30) } }
        guard let first = digits.firstIndex(where: { $0 != 0 }) else { return 0 }  // zero, whatever its exponent
        digits.removeFirst(first)
        // The exponent, saturated past the mantissa's length and 40: beyond that the number is
        // far from any Int64 however many fraction digits or trailing zeros offset it (a cap
        // the mantissa could outweigh would turn 1 followed by a million zeros and
        // `e-1000001` into 10).
        let cap = expStart - intStart + 40
        var exponent = 0
        var k = expStart
        var expNegative = false
        if k < expEnd, buf[k] == UInt8(ascii: "+") || buf[k] == UInt8(ascii: "-") {
            expNegative = buf[k] == UInt8(ascii: "-")
            k += 1
        }
        while k < expEnd {
            exponent = min(exponent * 10 + Int(buf[k] &- 0x30), cap)
            k += 1
        }
        var scale = (expNegative ? -exponent : exponent) - (fracEnd > intEnd ? fracEnd - intEnd - 1 : 0)
        while let last = digits.last, last == 0 {
            digits.removeLast()
            scale += 1
        }
        // A fraction is left (not an integer), or more than 19 digits (beyond Int64).
        guard scale >= 0, digits.count + scale <= 19 else { return nil }
        var value: Int64 = 0
        for d in digits + Array(repeating: 0, count: scale) {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(d)) : m.addingReportingOverflow(Int64(d))
            if o1 || o2 { return nil }
            value = s
        }
        return value
    }

    /// Exact Int64 from a validated integer lexeme, nil on overflow.
    private func parseInt64(_ start: Int, _ end: Int) -> Int64? {
        var k = start
        let negative = buf[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        var value: Int64 = 0
        while k < end {
            let digit = Int64(buf[k] &- UInt8(ascii: "0"))
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            if o1 { return nil }
            let (s, o2) = negative ? m.subtractingReportingOverflow(digit) : m.addingReportingOverflow(digit)
            if o2 { return nil }
            value = s
            k += 1
        }
        return value
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    private mutating func parseString() throws -> String {
        i += 1
        let start = i
        // Fast path: no escapes. ASCII (ids, keys, codes: most strings) is valid UTF-8 and skips
        // the standard library's validation, whose generic code cost a metadata lookup a string.
        var ascii = true
        while i < buf.count {
            let c = buf[i]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: buf[start..<i])
                let s: String
                if ascii {
                    s = String(decoding: slice, as: UTF8.self)
                } else {
                    guard let valid = String(validating: slice, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                    s = valid
                }
                i += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in string") }
            if c >= 0x80 { ascii = false }
            i += 1
        }
        var bytes = Array(UnsafeBufferPointer(rebasing: buf[start..<i]))
        while i < buf.count {
            let c = buf[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                guard let s = String(validating: bytes, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                return s
            }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") { bytes.append(c); i += 1; continue }
            i += 1
            guard i < buf.count else { break }
            let e = buf[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "/"): bytes.append(0x2F)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < buf.count, buf[i] == UInt8(ascii: "\\"), buf[i + 1] == UInt8(ascii: "u") else {
                        throw error("lone surrogate in string")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("lone surrogate in string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("lone surrogate in string")
                }
                bytes.append(contentsOf: Array(String(Unicode.Scalar(scalar)!).utf8))
            default: throw error("invalid escape in string")
            }
        }
        throw error("unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= buf.count else { throw error("invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}
