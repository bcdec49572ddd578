import SLAMJSON
import Testing

/// PROTOCOL.md section 3: "the same command" is the same JSON value: key order, white space and
/// number spelling such as `1` versus `1.0` do not matter.
@Suite("JSON.canonical")
struct JSONCanonicalTests {
    struct Same: Sendable, CustomTestStringConvertible {
        var a: String
        var b: String
        var testDescription: String { "\(a) ≡ \(b)" }
    }

    @Test("spellings of one value have one canonical form", arguments: [
        Same(a: #"{"a":1,"b":2}"#, b: #"{"b":2,"a":1}"#),
        Same(a: #"{"a":1,"b":2}"#, b: " {\n\t\"a\" : 1 ,\r\n \"b\" : 2 } "),
        Same(a: #"{"a":1}"#, b: #"{"a":1.0}"#),
        Same(a: #"{"a":1}"#, b: #"{"a":1e0}"#),
        Same(a: #"{"a":100}"#, b: #"{"a":1E2}"#),
        Same(a: #"{"a":1}"#, b: #"{"a":10e-1}"#),
        Same(a: #"{"a":0}"#, b: #"{"a":-0}"#),
        Same(a: #"{"a":0}"#, b: #"{"a":-0.0}"#),
        Same(a: #"{"a":0.5}"#, b: #"{"a":5e-1}"#),
        Same(a: #"{"x":{"b":[1,{"d":1,"c":2}],"a":null}}"#, b: #"{"x":{"a":null,"b":[1.0,{"c":2,"d":1}]}}"#),
        Same(a: #"{"s":"A/é"}"#, b: #"{"s":"\u0041\/\u00e9"}"#),
        Same(a: #"{"s":"😀"}"#, b: #"{"s":"\ud83d\ude00"}"#),
        Same(a: #"{"a":1,"a":2}"#, b: #"{"a":2}"#),
        // Integral values past 2^53 that a double holds exactly: one value, as the body fields
        // read them (PROTOCOL.md section 3: number spelling does not matter).
        Same(a: #"{"n":10000000000000000}"#, b: #"{"n":1e16}"#),
        Same(a: #"{"n":4611686018427387904}"#, b: #"{"n":4611686018427387904.0}"#),
        // And those it does not: the number as written (a double would make the second 2^53 + 2).
        Same(a: #"{"n":9007199254740993}"#, b: #"{"n":9007199254740993.0}"#),
        Same(a: #"{"n":9223372036854775807}"#, b: #"{"n":9.223372036854775807e18}"#),
        // Non-integers and numbers beyond Int64: their double, however written, as RFC 8785
        // compares numbers (README, "Integers"): values apart only past a double's precision are one.
        Same(a: #"{"x":12345678901234567.5}"#, b: #"{"x":12345678901234568.5}"#),
        Same(a: #"{"x":1e-400}"#, b: #"{"x":2e-400}"#),
        Same(a: #"{"a":1.0000000000000001}"#, b: #"{"a":1.00000000000000001}"#),
        Same(a: #"{"a":1e30}"#, b: #"{"a":1000000000000000000000000000000}"#),
        Same(a: #"{"a":1.5}"#, b: #"{"a":15e-1}"#),
    ])
    func same(_ c: Same) throws {
        #expect(try Array(JSONParser.parse(c.a).canonical.utf8) == Array(JSONParser.parse(c.b).canonical.utf8))
    }

    struct Different: Sendable, CustomTestStringConvertible {
        var a: String
        var b: String
        var testDescription: String { "\(a) ≢ \(b)" }
    }

    @Test("different values have different canonical forms", arguments: [
        Different(a: #"{"a":1}"#, b: #"{"a":2}"#),
        Different(a: #"{"a":1}"#, b: #"{"a":"1"}"#),
        Different(a: #"{"a":1}"#, b: #"{"a":1.5}"#),
        Different(a: #"{"a":1}"#, b: #"{"a":true}"#),
        Different(a: #"{"a":0}"#, b: #"{"a":false}"#),
        Different(a: #"{"a":0}"#, b: #"{"a":null}"#),
        Different(a: #"{"a":null}"#, b: #"{}"#),
        Different(a: #"{"a":1}"#, b: #"{"a":1,"b":1}"#),
        Different(a: #"{"a":1}"#, b: #"{"A":1}"#),
        Different(a: #"[1,2]"#, b: #"[2,1]"#),
        Different(a: #"[1]"#, b: #"[[1]]"#),
        Different(a: #"{"a":[]}"#, b: #"{"a":{}}"#),
        Different(a: #"{"s":"a"}"#, b: #"{"s":"A"}"#),
        Different(a: #"{"s":"é"}"#, b: #"{"s":"e\u0301"}"#),
        Different(a: #"{"a":0.1}"#, b: #"{"a":0.2}"#),
        Different(a: #"{"n":9007199254740993}"#, b: #"{"n":9007199254740992}"#),
        Different(a: #"{"n":9223372036854775807}"#, b: #"{"n":9223372036854775806}"#),
        Different(a: #"{"n":9007199254740993.0}"#, b: #"{"n":9007199254740992}"#),
        // Not integers, though a double rounds them to one: not the integer (the body fields
        // refuse them, and the idempotency check, which comes first, must not replay them).
        Different(a: #"{"a":1}"#, b: #"{"a":1.0000000000000001}"#),
        Different(a: #"{"a":1}"#, b: #"{"a":0.99999999999999999}"#),
        Different(a: #"{"a":0}"#, b: #"{"a":1e-400}"#),
        Different(a: #"{"n":9007199254740994}"#, b: #"{"n":9007199254740993.5}"#),
    ])
    func different(_ c: Different) throws {
        // Bytes, not `String ==`, which equates canonically equivalent text such as é and e + U+0301.
        #expect(try Array(JSONParser.parse(c.a).canonical.utf8) != Array(JSONParser.parse(c.b).canonical.utf8))
    }

    @Test("the canonical form: members sorted, no white space, integral numbers as integers")
    func form() throws {
        #expect(try JSONParser.parse(#" { "b" : [ 2.0 , 1.5, "x" ] , "a" : { "d" : true, "c" : null } } "#).canonical
            == #"{"a":{"c":null,"d":true},"b":[2,1.5,"x"]}"#)
    }

    @Test("members sort by UTF-16 code units, as RFC 8785 does")
    func utf16Order() throws {
        // By scalar value 😀 (U+1F600) would sort after ｚ (U+FF5A); by UTF-16 its lead surrogate 0xD83D sorts before.
        #expect(try JSONParser.parse(#"{"ｚ":1,"😀":2,"é":3,"Z":4,"a":5}"#).canonical == #"{"Z":4,"a":5,"é":3,"😀":2,"ｚ":1}"#)
        // After a common start: a name that is the other's start first, then ASCII by bytes, then
        // a difference at a non-ASCII character by UTF-16 (the order of the UTF-8 bytes would put
        // ｚ before 😀).
        #expect(try JSONParser.parse(#"{"aｚ":6,"ab":1,"a😀":5,"aé":4,"aZ":3,"a":2,"xaZ":7,"xa":8}"#).canonical
            == #"{"a":2,"aZ":3,"ab":1,"aé":4,"a😀":5,"aｚ":6,"xa":8,"xaZ":7}"#)
    }

    @Test("serialized keeps member order and spelling apart from white space")
    func serialized() throws {
        #expect(try JSONParser.parse(#" { "b" : 1.5 , "a" : [ true , null ] } "#).serialized == #"{"b":1.5,"a":[true,null]}"#)
    }
}
