import SLAMDomain
import Testing

@Suite("RFC3339")
struct RFC3339Tests {
    struct Instant: Sendable, CustomTestStringConvertible {
        var ms: Millis
        var text: String
        var testDescription: String { text }
    }

    @Test("writes UTC with milliseconds", arguments: [
        Instant(ms: 0, text: "1970-01-01T00:00:00.000Z"),
        Instant(ms: 1, text: "1970-01-01T00:00:00.001Z"),
        Instant(ms: -1, text: "1969-12-31T23:59:59.999Z"),
        Instant(ms: 951_782_400_000, text: "2000-02-29T00:00:00.000Z"),
        Instant(ms: 1_798_138_800_000, text: "2026-12-24T19:00:00.000Z"),
        Instant(ms: 1_798_138_800_000 + 86_399_999 - 19 * 3_600_000, text: "2026-12-24T23:59:59.999Z"),
        Instant(ms: 1_798_761_599_999, text: "2026-12-31T23:59:59.999Z"),
        Instant(ms: 1_798_761_600_000, text: "2027-01-01T00:00:00.000Z"),
        Instant(ms: 253_402_300_799_999, text: "9999-12-31T23:59:59.999Z"),
    ])
    func format(_ i: Instant) {
        #expect(RFC3339.format(i.ms) == i.text)
        #expect(RFC3339.parse(i.text) == i.ms)
    }

    struct Parsed: Sendable, CustomTestStringConvertible {
        var text: String
        var ms: Millis
        var testDescription: String { text }
    }

    static let christmasEve: Millis = 1_798_138_800_000  // 2026-12-24T19:00:00Z

    @Test("reads any offset, an optional fraction, and lower-case t and z", arguments: [
        Parsed(text: "2026-12-24T19:00:00Z", ms: christmasEve),
        Parsed(text: "2026-12-24T19:00:00z", ms: christmasEve),
        Parsed(text: "2026-12-24t19:00:00Z", ms: christmasEve),
        Parsed(text: "2026-12-24t19:00:00z", ms: christmasEve),
        Parsed(text: "2026-12-24T19:00:00+00:00", ms: christmasEve),
        Parsed(text: "2026-12-24T19:00:00-00:00", ms: christmasEve),
        Parsed(text: "2026-12-25T04:00:00+09:00", ms: christmasEve),
        Parsed(text: "2026-12-24T14:00:00-05:00", ms: christmasEve),
        Parsed(text: "2026-12-25T00:30:00+05:30", ms: christmasEve),
        Parsed(text: "2026-12-24T19:00:00.5Z", ms: christmasEve + 500),
        Parsed(text: "2026-12-24T19:00:00.05Z", ms: christmasEve + 50),
        Parsed(text: "2026-12-24T19:00:00.123Z", ms: christmasEve + 123),
        Parsed(text: "2026-12-24T19:00:00.123456Z", ms: christmasEve + 123),
        Parsed(text: "2026-12-24T19:00:00.999999999Z", ms: christmasEve + 999),
        Parsed(text: "2026-12-25T04:00:00.250+09:00", ms: christmasEve + 250),
        Parsed(text: "2000-02-29T00:00:00Z", ms: 951_782_400_000),
    ])
    func parse(_ p: Parsed) {
        #expect(RFC3339.parse(p.text) == p.ms)
    }

    @Test("refuses what is not an RFC 3339 date-time", arguments: [
        "", "2026-12-24", "2026-12-24T19:00Z", "2026-12-24T19:00:00", "2026-12-24T19:00:00+0900", "2026-12-24T19:00:00+09",
        "2026-12-24T19:00:00.Z", "2026-12-24T19:00:00ZZ", "2026-12-24T19:00:00Z ", " 2026-12-24T19:00:00Z",
        "2026-12-24X19:00:00Z", "26-12-24T19:00:00Z", "2026-1-24T19:00:00Z", "2026/12/24T19:00:00Z", "2026-12-24T19:00:00GMT",
        "2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-12-00T00:00:00Z", "2026-12-32T00:00:00Z",
        "2026-12-24T24:00:00Z", "2026-12-24T19:60:00Z", "2026-12-24T19:00:61Z",
        "2026-12-24T19:00:00+24:00", "2026-12-24T19:00:00+09:60", "２０２６-12-24T19:00:00Z",
    ])
    func refuses(_ text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test("what it writes, it reads back", arguments: [Millis(0), 1, 999, -86_400_001, 951_782_400_123, 1_798_138_800_007,
                                                       4_102_444_800_000])
    func roundTrip(ms: Millis) {
        #expect(RFC3339.parse(RFC3339.format(ms)) == ms)
    }

    @Test("reads only years 0000 to 9999 in UTC, whatever the offset", arguments: [
        Parsed(text: "0000-01-01T00:00:00Z", ms: RFC3339.range.lowerBound),
        Parsed(text: "0000-01-01T00:01:00+00:01", ms: RFC3339.range.lowerBound),
        Parsed(text: "9999-12-31T23:59:59.999Z", ms: RFC3339.range.upperBound),
        Parsed(text: "9999-12-31T22:59:59.999-01:00", ms: RFC3339.range.upperBound),
    ])
    func bounds(_ p: Parsed) {
        #expect(RFC3339.parse(p.text) == p.ms)
        #expect(RFC3339.format(p.ms).count == 24)
    }

    @Test("refuses an instant before year 0 or after 9999 in UTC", arguments: [
        "0000-01-01T00:00:00+00:01", "0000-01-01T00:00:00.999+00:01", "9999-12-31T23:59:59-01:00", "9999-12-31T23:30:00-00:30",
    ])
    func outOfRange(_ text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test("writes any Int64 without trapping: outside the range, a signed expanded year", arguments: [
        Instant(ms: RFC3339.range.lowerBound - 60_000, text: "-000001-12-31T23:59:00.000Z"),
        Instant(ms: RFC3339.range.upperBound + 1, text: "+010000-01-01T00:00:00.000Z"),
        Instant(ms: Int64.min, text: "-292275055-05-16T16:47:04.192Z"),
        Instant(ms: Int64.max, text: "+292278994-08-17T07:12:55.807Z"),
    ])
    func expanded(_ i: Instant) {
        #expect(RFC3339.format(i.ms) == i.text)
        #expect(RFC3339.parse(i.text) == nil)
    }
}

@Suite("Ids")
struct IdTests {
    static let crockford = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    @Test("a sortable id is the kind's prefix and 26 Crockford base32 characters", arguments: [
        (IdKind.user, "usr_"), (.concert, "con_"), (.schedule, "sch_"), (.reservation, "res_"), (.token, "tok_"),
    ])
    func shape(kind: IdKind, prefix: String) {
        var ids = SortableIdGenerator()
        let id = ids.next(kind, at: 1_798_138_800_000)
        #expect(id.count == 30)
        #expect(id.hasPrefix(prefix))
        #expect(id.dropFirst(4).allSatisfy { Self.crockford.contains($0) })
    }

    @Test("the first 10 characters are the time in milliseconds")
    func timePrefix() {
        var ids = SortableIdGenerator()
        #expect(ids.next(.user, at: 1_798_138_800_000).dropFirst(4).prefix(10) == "01MAMPS9W0")
        var other = SortableIdGenerator()
        #expect(other.next(.store, at: 0).dropFirst(3).prefix(10) == "0000000000")
    }

    @Test("ids increase strictly within a millisecond")
    func withinMillisecond() {
        var ids = SortableIdGenerator()
        let made = (0..<10_000).map { _ in ids.next(.reservation, at: 1_798_138_800_000) }
        #expect(zip(made, made.dropFirst()).allSatisfy { $0 < $1 })
        #expect(Set(made).count == made.count)
    }

    @Test("ids increase strictly across milliseconds, and when the clock steps back")
    func acrossMilliseconds() {
        var ids = SortableIdGenerator()
        let times: [Millis] = [1_000, 1_000, 1_001, 1_001, 1_001, 5_000, 4_999, 4_000, 5_000, 5_001, 1_798_138_800_000]
        let made = times.map { ids.next(.token, at: $0) }
        #expect(zip(made, made.dropFirst()).allSatisfy { $0 < $1 }, "\(made)")
    }

    @Test("two generators at the same millisecond do not collide")
    func twoGenerators() {
        var a = SortableIdGenerator(), b = SortableIdGenerator()
        let fromA = Set((0..<100).map { _ in a.next(.user, at: 42) })
        let fromB = Set((0..<100).map { _ in b.next(.user, at: 42) })
        #expect(fromA.isDisjoint(with: fromB))
    }

    @Test("sequential ids count per kind")
    func sequential() {
        var ids = SequentialIdGenerator()
        #expect(ids.next(.user, at: 0) == "usr_1")
        #expect(ids.next(.user, at: 0) == "usr_2")
        #expect(ids.next(.reservation, at: 0) == "res_1")
        #expect(ids.next(.schedule, at: 0) == "sch_1")
        #expect(ids.next(.user, at: 0) == "usr_3")
    }
}
