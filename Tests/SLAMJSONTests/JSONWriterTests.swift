import SLAMJSON
import Testing

@Suite("JSONWriter")
struct JSONWriterTests {
    static func written(_ build: (inout JSONWriter) -> Void) -> String {
        var w = JSONWriter()
        build(&w)
        return w.string
    }

    @Test("escapes what JSON requires and nothing else", arguments: [
        ("plain", #""plain""#),
        ("\"", #""\"""#),
        ("\\", #""\\""#),
        ("\n\r\t", #""\n\r\t""#),
        ("\u{0}\u{1}\u{8}\u{C}\u{1F}", #""\u0000\u0001\u0008\u000c\u001f""#),
        ("/", #""/""#),
        ("\u{7F}", "\"\u{7F}\""),
        ("é😀\u{2028}", "\"é😀\u{2028}\""),
    ])
    func escaping(string: String, json: String) {
        #expect(Self.written { $0.value(string) } == json)
    }

    @Test("every string survives writing and parsing", arguments: [
        "", "a", "\"quoted\" \\ back\\slash", "line\nbreak\r\n\ttab", String((0..<0x20).map { Character(Unicode.Scalar($0)!) }),
        "\u{7F}\u{80}\u{FF}", "é, ü, ñ, 漢字, 한국어", "😀👍🏽🇰🇷", "\u{FFFF}\u{10FFFF}", "\u{2028}\u{2029}", "e\u{301}",
        "</script>", "\u{0}nul in the middle\u{0}",
    ])
    func roundTrip(_ s: String) throws {
        let json = Self.written { $0.value(s) }
        // Scalar by scalar: `String ==` would forgive a change of normalization.
        #expect(try JSONParser.parse(json).stringValue.map { Array($0.unicodeScalars) } == Array(s.unicodeScalars))
        // Member names are escaped alike.
        let object = Self.written { $0.beginObject(); $0.field(s, 1); $0.endObject() }
        #expect(try JSONParser.parse(object) == .object(JSONObject([(s, .int(1))])))
    }

    @Test("integers are written exactly", arguments: [Int64.min, -1, 0, 7, 1_000_000, Int64.max])
    func integers(_ n: Int64) throws {
        let text = Self.written { $0.value(n) }
        #expect(text == String(n))
        #expect(try JSONParser.parse(text) == .int(n))
    }

    @Test("doubles: integral ones within 2^53 as integers, the others so they read back the same", arguments: [
        (1.0, "1"), (-2.0, "-2"), (0.0, "0"), (-0.0, "0"), (1.5, "1.5"), (0.1, "0.1"), (1e30, "1e+30"), (-2.5e-8, "-2.5e-08"),
    ])
    func doubles(d: Double, text: String) throws {
        let written = Self.written { $0.value(d) }
        #expect(written == text)
        #expect(try JSONParser.parse(written).int64Value == JSON.double(d).int64Value)
        if case .double(let back) = try JSONParser.parse(written) { #expect(back == d) }
    }

    @Test("commas go between members and elements at every depth")
    func structure() {
        let text = Self.written { w in
            w.beginArray()
            w.beginObject(); w.endObject()
            w.beginObject()
            w.field("a", "x"); w.field("b", Int64(1)); w.field("c", true)
            w.key("d"); w.beginArray(); w.endArray()
            w.key("e"); w.valueNull()
            w.field("f", [3, 1, 2])
            w.endObject()
            w.beginArray(); w.value(Int64(1)); w.value(false); w.endArray()
            w.raw(#"{"r":1}"#)
            w.endArray()
        }
        #expect(text == #"[{},{"a":"x","b":1,"c":true,"d":[],"e":null,"f":[3,1,2]},[1,false],{"r":1}]"#)
    }

    @Test("a JSON value is written as it was read", arguments: [
        #"{"b":1,"a":[1,-2,true,false,null,"x",{"c":1.5}],"d":{}}"#,
        #"[[],[[]],{"":""}]"#,
        #""just a string""#,
    ])
    func valueRoundTrip(_ text: String) throws {
        let v = try JSONParser.parse(text)
        #expect(v.serialized == text)
        #expect(try JSONParser.parse(v.serialized) == v)
    }
}
