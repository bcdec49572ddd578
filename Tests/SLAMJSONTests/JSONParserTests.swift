import SLAMJSON
import Testing

/// A document given as bytes, named for the test report.
struct Doc: Sendable, CustomTestStringConvertible {
    var bytes: [UInt8]
    var testDescription: String

    init(_ text: String) {
        bytes = Array(text.utf8)
        testDescription = text.debugDescription
    }

    /// Text with raw bytes spliced in where `bytes` has them (for invalid UTF-8 and raw control characters).
    init(_ bytes: [UInt8], _ description: String) {
        self.bytes = bytes
        testDescription = description
    }
}

func quoted(_ raw: [UInt8]) -> [UInt8] { [0x22] + raw + [0x22] }

@Suite("JSONParser")
struct JSONParserTests {
    struct Accepted: Sendable, CustomTestStringConvertible {
        var text: String
        var value: JSON
        var testDescription: String { text.debugDescription }
    }

    @Test("accepts every kind of value", arguments: [
        Accepted(text: "null", value: .null),
        Accepted(text: "true", value: .bool(true)),
        Accepted(text: "false", value: .bool(false)),
        Accepted(text: "0", value: .int(0)),
        Accepted(text: "-0", value: .int(0)),
        Accepted(text: "42", value: .int(42)),
        Accepted(text: "-17", value: .int(-17)),
        Accepted(text: "1.5", value: .double(1.5)),
        Accepted(text: "-0.25", value: .double(-0.25)),
        Accepted(text: "1e3", value: .int(1000)),
        Accepted(text: "1E+3", value: .int(1000)),
        Accepted(text: "25e-2", value: .double(0.25)),
        Accepted(text: "0.5e1", value: .int(5)),
        Accepted(text: "\"\"", value: .string("")),
        Accepted(text: "\"héllo 😀\"", value: .string("héllo 😀")),
        Accepted(text: "[]", value: .array([])),
        Accepted(text: "{}", value: .object([:])),
        Accepted(text: "[1,\"a\",[true],{\"b\":null}]",
                 value: .array([.int(1), .string("a"), .array([.bool(true)]), .object(["b": .null])])),
        Accepted(text: " \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \n",
                 value: .object(["a": .array([.int(1), .int(2)]), "b": .object([:])])),
    ])
    func accepts(_ c: Accepted) throws {
        #expect(try JSONParser.parse(c.text) == c.value)
    }

    struct Escape: Sendable, CustomTestStringConvertible {
        var json: String
        var string: String
        var testDescription: String { json }
    }

    @Test("decodes every escape", arguments: [
        Escape(json: #""\"""#, string: "\""),
        Escape(json: #""\\""#, string: "\\"),
        Escape(json: #""\/""#, string: "/"),
        Escape(json: #""\b\f\n\r\t""#, string: "\u{08}\u{0C}\n\r\t"),
        Escape(json: #""\u0000""#, string: "\u{0}"),
        Escape(json: #""\u001f""#, string: "\u{1F}"),
        Escape(json: #""\u00e9\u00E9""#, string: "éé"),
        Escape(json: #""\u20AC""#, string: "€"),
        Escape(json: #""\uFFFF""#, string: "\u{FFFF}"),
        Escape(json: #""\uD83D\uDE00""#, string: "😀"),
        Escape(json: #""\ud834\udd1e""#, string: "𝄞"),
        Escape(json: #""a\nb😀c\u0041""#, string: "a\nb😀cA"),
    ])
    func escapes(_ c: Escape) throws {
        #expect(try JSONParser.parse(c.json) == .string(c.string))
    }

    @Test("rejects malformed documents", arguments: [
        Doc(""), Doc("   "), Doc("{"), Doc("}"), Doc("["), Doc("[1,]"), Doc("[,1]"), Doc("[1 2]"), Doc("{\"a\":1,}"),
        Doc("{\"a\"}"), Doc("{\"a\" 1}"), Doc("{a:1}"), Doc("{'a':1}"), Doc("{1:1}"), Doc("'a'"),
        Doc("tru"), Doc("True"), Doc("nul"), Doc("nulll"), Doc("NaN"), Doc("Infinity"), Doc("-Infinity"), Doc("undefined"),
    ])
    func rejectsMalformed(_ doc: Doc) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(doc.bytes) }
    }

    @Test("rejects numbers JSON does not allow", arguments: [
        Doc("01"), Doc("-01"), Doc("00"), Doc("00.5"), Doc("1."), Doc(".5"), Doc("+1"), Doc("-"), Doc("1e"), Doc("1e+"),
        Doc("1.e3"), Doc("0x10"), Doc("1_000"), Doc("- 1"),
    ])
    func rejectsNumbers(_ doc: Doc) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(doc.bytes) }
    }

    @Test("rejects numbers beyond a double's range rather than making them infinite",
          arguments: [Doc("1e400"), Doc("-1e400"), Doc("[1e309]"), Doc("{\"a\":1" + String(repeating: "0", count: 400) + "}")])
    func rejectsInfinity(_ doc: Doc) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(doc.bytes) }
    }

    @Test("rejects trailing garbage", arguments: [Doc("{} x"), Doc("1 2"), Doc("[1]]"), Doc("{}}"), Doc("\"a\"\"b\""),
                                                  Doc("null,"), Doc("0 0")])
    func rejectsTrailing(_ doc: Doc) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(doc.bytes) }
    }

    @Test("rejects bad strings: unterminated, bad escapes, lone surrogates", arguments: [
        Doc(#""abc"#), Doc(#""abc\"#), Doc(#""\x""#), Doc(#""\a""#), Doc(#""\'""#), Doc(#""\U0041""#), Doc(#""\u12""#),
        Doc(#""\u12G4""#), Doc(#""\u""#),
        Doc(#""\uD800""#), Doc(#""\uDBFF""#), Doc(#""\uDC00""#), Doc(#""\uDFFF""#), Doc(#""\uD800x""#),
        Doc(#""\uD800\n""#), Doc(#""\uD800\u0041""#), Doc(#""\uD800\uD800""#), Doc(#""\uDE00\uD83D""#),
    ])
    func rejectsBadStrings(_ doc: Doc) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(doc.bytes) }
    }

    @Test("rejects raw control characters in strings, with or without escapes before them", arguments: [
        Doc(quoted([0x61, 0x0A, 0x62]), "raw LF"),
        Doc(quoted([0x09]), "raw tab"),
        Doc(quoted([0x00]), "raw NUL"),
        Doc(quoted([0x1F]), "raw 0x1F"),
        Doc(quoted([0x5C, 0x6E, 0x0D]), "escape then raw CR"),
        Doc([0x7B, 0x22, 0x61, 0x0A, 0x22, 0x3A, 0x31, 0x7D], "raw LF in a member name"),
    ])
    func rejectsControlCharacters(_ doc: Doc) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(doc.bytes) }
    }

    @Test("accepts DEL (0x7F), which is not a control character for JSON")
    func acceptsDel() throws {
        #expect(try JSONParser.parse(quoted([0x7F])) == .string("\u{7F}"))
    }

    @Test("rejects invalid UTF-8", arguments: [
        Doc(quoted([0xFF]), "0xFF"),
        Doc(quoted([0x80]), "lone continuation byte"),
        Doc(quoted([0xC3]), "truncated 2-byte sequence"),
        Doc(quoted([0xE2, 0x82]), "truncated 3-byte sequence"),
        Doc(quoted([0xC0, 0x80]), "overlong NUL"),
        Doc(quoted([0xE0, 0x80, 0xAF]), "overlong '/'"),
        Doc(quoted([0xED, 0xA0, 0x80]), "encoded surrogate U+D800"),
        Doc(quoted([0xF4, 0x90, 0x80, 0x80]), "above U+10FFFF"),
        Doc(quoted([0x5C, 0x6E, 0xFF]), "after an escape"),
        Doc([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D], "in a member name"),
        Doc([0xEF, 0xBB, 0xBF, 0x7B, 0x7D], "a byte order mark before the value"),
        Doc([0xFF], "outside a string"),
    ])
    func rejectsInvalidUTF8(_ doc: Doc) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(doc.bytes) }
    }

    @Test("nesting: 64 levels are accepted by default, 65 are not")
    func depthLimit() throws {
        func nested(_ depth: Int, _ open: String, _ close: String) -> String {
            String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
        }
        #expect(throws: Never.self) { try JSONParser.parse(nested(64, "[", "]")) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(nested(65, "[", "]")) }
        #expect(throws: Never.self) { try JSONParser.parse(nested(64, "{\"a\":", "}")) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(nested(65, "{\"a\":", "}")) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(String(repeating: "[", count: 100_000)) }
    }

    @Test("nesting: the limit is a parameter, counting objects and arrays alike")
    func customDepth() throws {
        #expect(throws: Never.self) { try JSONParser.parse(Array("[{\"a\":1}]".utf8), maxDepth: 2) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array("[{\"a\":[]}]".utf8), maxDepth: 2) }
        #expect(throws: Never.self) { try JSONParser.parse(Array("1".utf8), maxDepth: 0) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array("[]".utf8), maxDepth: 0) }
    }

    @Test("an error says where")
    func errorOffset() {
        let error = #expect(throws: JSONParseError.self) { try JSONParser.parse("{} x") }
        #expect(error?.offset == 3)
        #expect(error?.message == "unexpected data after the JSON value")
    }

    @Test("object members keep their order; a repeated name keeps its last value")
    func members() throws {
        let o = try #require(try JSONParser.parse(#"{"b":1,"a":2,"b":3}"#).objectValue)
        #expect(o.keys == ["b", "a"])
        #expect(o["b"] == .int(3))
        #expect(o.count == 2)
    }

    @Test("a large object keeps the same rules: order of first appearance, last value of a repeated name")
    func largeObjectMembers() throws {
        // Past 16 members repeated names are found by hashing; the result must not differ.
        let names = (0..<5000).map { "k\($0)" }
        var text = "{" + names.map { "\"\($0)\":0" }.joined(separator: ",")
        text += ",\"k17\":1,\"k4999\":2,\"k0\":3,\"new\":4}"
        let o = try #require(try JSONParser.parse(text).objectValue)
        #expect(o.keys == names + ["new"])
        #expect(o["k17"] == .int(1) && o["k4999"] == .int(2) && o["k0"] == .int(3) && o["new"] == .int(4) && o["k18"] == .int(0))
        let pairs: [(String, JSON)] = (0..<40).map { ("k\($0 % 20)", .int(Int64($0))) }
        let built = JSONObject(pairs)
        #expect(built.keys == (0..<20).map { "k\($0)" })
        #expect(built["k3"] == .int(23))
    }

    @Test("objects are equal whatever their members' order")
    func objectEquality() throws {
        #expect(try JSONParser.parse(#"{"a":1,"b":[2]}"#) == JSONParser.parse(#"{"b":[2],"a":1}"#))
        #expect(try JSONParser.parse(#"{"a":1,"b":[2]}"#) != JSONParser.parse(#"{"a":1,"b":[2],"c":null}"#))
        #expect(try JSONParser.parse(#"{"a":1}"#) != JSONParser.parse(#"{"a":1.5}"#))
        #expect(try JSONParser.parse("[1,2]") != JSONParser.parse("[2,1]"))
    }

    @Test("accessors answer only for their own kind")
    func accessors() throws {
        let v = try JSONParser.parse(#"{"s":"x","b":true,"a":[1],"o":{"k":null}}"#)
        #expect(v["s"]?.stringValue == "x")
        #expect(v["b"]?.boolValue == true)
        #expect(v["a"]?.arrayValue == [.int(1)])
        #expect(v["o"]?.objectValue?["k"] == .null)
        #expect(v["s"]?.boolValue == nil)
        #expect(v["b"]?.stringValue == nil)
        #expect(v["missing"] == nil)
        #expect(v["a"]?["k"] == nil)
    }

    /// Names are compared by their bytes, as RFC 8259 compares them: canonically equivalent
    /// spellings (precomposed and decomposed é; KELVIN SIGN and K) are different names, in small
    /// objects and in large ones (the hashing path).
    @Test(arguments: [0, 20])
    func namesAreComparedByTheirBytes(padding: Int) throws {
        let pad = (0..<padding).map { #""p\#($0)":0,"# }.joined()
        let v = try JSONParser.parse("{" + pad + #""\u00e9":1,"e\u0301":2,"idempotencyKey":"k"}"#)
        #expect(v.objectValue?.count == padding + 3)
        #expect(v["\u{E9}"] == .int(1))
        #expect(v["e\u{301}"] == .int(2))
        #expect(v["idempotency\u{212A}ey"] == nil)
        #expect(v["idempotencyKey"] == .string("k"))
    }
}

/// `JSONParser.topLevelStrings`: a top-level object's string members, read past the limits that
/// `parse` refuses, for echoing a refused request's `requestId`.
@Suite("JSONParser.topLevelStrings")
struct TopLevelStringsTests {
    @Test("string members of an object parse refuses for its limits")
    func pastTheLimits() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        for extra in [deep, "1e400", #""\ud800""#] {
            let text = #"{"requestId":"r1","n":5,"x":"# + extra + #","type":"GetStats"}"#
            #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
            #expect(JSONParser.topLevelStrings(Array(text.utf8)) == ["requestId": "r1", "type": "GetStats"], "\(extra)")
        }
        // Brackets and quotes inside a skipped value's strings are passed over.
        let text = #"{"x":{"s":"}]\"","n":[1,{"x":"]"}]},"requestId":"r2"}"#
        #expect(JSONParser.topLevelStrings(Array(text.utf8)) == ["requestId": "r2"])
    }

    @Test("the last member of a name counts, a string or not")
    func lastWins() {
        #expect(JSONParser.topLevelStrings(Array(#"{"a":"1","a":"2"}"#.utf8)) == ["a": "2"])
        #expect(JSONParser.topLevelStrings(Array(#"{"a":"1","a":2}"#.utf8)) == [:])
        #expect(JSONParser.topLevelStrings(Array(#" { } "#.utf8)) == [:])
    }

    @Test("not an object, or broken: nil", arguments: [
        #"["a"]"#, #""a""#, #"{"a":"1" oops}"#, #"{"a":"1",}"#, #"{"a":"1""#, #"{"a" "1"}"#, #"{"a":}"#, #"{"a":[1,2}"#, "",
    ])
    func broken(_ text: String) {
        #expect(JSONParser.topLevelStrings(Array(text.utf8)) == nil)
    }
}
