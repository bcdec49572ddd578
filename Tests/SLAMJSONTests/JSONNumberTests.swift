import SLAMJSON
import Testing

@Suite("JSON numbers")
struct JSONNumberTests {
    struct Number: Sendable, CustomTestStringConvertible {
        var text: String
        var value: JSON
        var int64: Int64?
        var testDescription: String { text.count > 40 ? "\(text.prefix(20))…\(text.suffix(12)) (\(text.count) characters)" : text }
    }

    @Test("a number whose value is an integer that fits in 64 bits is an exact int, however it is spelled; any other is a double", arguments: [
        Number(text: "0", value: .int(0), int64: 0),
        Number(text: "9223372036854775807", value: .int(.max), int64: .max),
        Number(text: "-9223372036854775808", value: .int(.min), int64: .min),
        Number(text: "9007199254740993", value: .int(9_007_199_254_740_993), int64: 9_007_199_254_740_993),
        Number(text: "9223372036854775808", value: .double(9_223_372_036_854_775_808), int64: nil),
        Number(text: "-9223372036854775809", value: .double(-9_223_372_036_854_775_809), int64: nil),
        Number(text: "18446744073709551616", value: .double(18_446_744_073_709_551_616), int64: nil),
        Number(text: "1.0", value: .int(1), int64: 1),
        Number(text: "-2.000", value: .int(-2), int64: -2),
        Number(text: "1e3", value: .int(1000), int64: 1000),
        Number(text: "10E-1", value: .int(1), int64: 1),
        Number(text: "-0.0", value: .int(0), int64: 0),
        Number(text: "0e999999999999", value: .int(0), int64: 0),
        Number(text: "0.00120e4", value: .int(12), int64: 12),
        Number(text: "1.5", value: .double(1.5), int64: nil),
        Number(text: "-0.5", value: .double(-0.5), int64: nil),
        Number(text: "1e30", value: .double(1e30), int64: nil),
        Number(text: "-1e30", value: .double(-1e30), int64: nil),
        // Exact: these are integers within Int64, whatever double they are near.
        Number(text: "9.2233720368547758e18", value: .int(9_223_372_036_854_775_800), int64: 9_223_372_036_854_775_800),
        Number(text: "9.223372036854774e18", value: .int(9_223_372_036_854_774_000), int64: 9_223_372_036_854_774_000),
        Number(text: "-9.223372036854775808e18", value: .int(.min), int64: .min),
        Number(text: "9.223372036854775808e18", value: .double(9.223372036854775808e18), int64: nil),
        // Not integers, though a double rounds them to one: a double, and int64Value reads the
        // double (the body fields refuse any double, PROTOCOL.md section 4).
        Number(text: "1.0000000000000001", value: .double(1), int64: 1),
        Number(text: "0.99999999999999999", value: .double(1), int64: 1),
        Number(text: "1e-400", value: .double(0), int64: 0),
        // Long mantissas against large exponents: the exponent is read in full where it matters.
        Number(text: "1" + String(repeating: "0", count: 1_000_001) + "e-1000001", value: .int(1), int64: 1),
        Number(text: "0." + String(repeating: "0", count: 1_000_001) + "1e1000002", value: .int(1), int64: 1),
        Number(text: "1" + String(repeating: "0", count: 100) + "e-99", value: .int(10), int64: 10),
        Number(text: "1e-99999999999999999999", value: .double(0), int64: 0),
    ])
    func numbers(_ n: Number) throws {
        let parsed = try JSONParser.parse(n.text)
        #expect(parsed == n.value)
        #expect(parsed.int64Value == n.int64)
    }

    @Test("9223372036854775807 is an int, one more is a double")
    func int64Boundary() throws {
        guard case .int(let max) = try JSONParser.parse("9223372036854775807") else {
            Issue.record("not an int")
            return
        }
        #expect(max == Int64.max)
        guard case .double = try JSONParser.parse("9223372036854775808") else {
            Issue.record("not a double")
            return
        }
    }

    @Test("only numbers have an int64Value")
    func nonNumbers() {
        #expect(JSON.string("1").int64Value == nil)
        #expect(JSON.bool(true).int64Value == nil)
        #expect(JSON.null.int64Value == nil)
        #expect(JSON.array([.int(1)]).int64Value == nil)
        #expect(JSON.double(.nan).int64Value == nil)
        #expect(JSON.double(.infinity).int64Value == nil)
    }
}
