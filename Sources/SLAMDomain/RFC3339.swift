/// RFC 3339 timestamps: parsed with any offset and optional fraction, written in UTC with
/// milliseconds (`2026-12-24T19:00:00.000Z`), as PROTOCOL.md section 2 says.
public enum RFC3339 {
    /// The instants a timestamp may name: 0000-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z,
    /// what the four-digit year of the written form can hold. `parse` refuses a timestamp outside
    /// it (whatever its offset), so everything stored and sent back is written in that form.
    public static let range: ClosedRange<Millis> = -62_167_219_200_000 ... 253_402_300_799_999

    /// Writes `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Defined for every `Int64`: an instant outside
    /// `range` (only a client's `deadline` can be one, in the message refusing it) gets ISO 8601's
    /// expanded year, a sign and at least six digits (`-000001-12-31T23:59:00.000Z`).
    public static func format(_ ms: Millis) -> String {
        let (days, msOfDay) = floorDivMod(ms, 86_400_000)
        let (y, m, d) = civil(fromDays: days)
        let h = msOfDay / 3_600_000, mi = (msOfDay / 60_000) % 60, s = (msOfDay / 1000) % 60, f = msOfDay % 1000
        var out = [UInt8]()
        out.reserveCapacity(24)
        // `v` is never negative (the year's sign is written apart): at least `width` digits,
        // written in place (the relay formats every event's time; no array per field).
        func pad(_ v: Int64, _ width: Int) {
            var count = 1
            var rest = v / 10
            while rest > 0 { count += 1; rest /= 10 }
            count = max(count, width)
            out.append(contentsOf: repeatElement(0x30, count: count))
            var x = v
            var k = out.count - 1
            while x > 0 { out[k] = UInt8(x % 10) + 0x30; x /= 10; k -= 1 }
        }
        if (0...9999).contains(y) {
            pad(y, 4)
        } else {
            out.append(y < 0 ? 0x2D : 0x2B)
            pad(Int64(y.magnitude), 6)  // at most nine digits: a year of Int64 milliseconds
        }
        out.append(0x2D); pad(m, 2); out.append(0x2D); pad(d, 2); out.append(0x54)
        pad(h, 2); out.append(0x3A); pad(mi, 2); out.append(0x3A); pad(s, 2); out.append(0x2E); pad(f, 3)
        out.append(0x5A)
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t`/`z` and a space separator are
    /// accepted as RFC 3339 allows. Fractions beyond milliseconds are truncated. Nil for anything
    /// else, and for an instant outside `range` (`0000-01-01T00:00:00+00:01` is in year -1 UTC).
    public static func parse(_ text: String) -> Millis? {
        let b = Array(text.utf8)
        var i = 0
        func num(_ n: Int) -> Int64? {
            guard i + n <= b.count else { return nil }
            var v: Int64 = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let y = num(4), expect(0x2D), let mo = num(2), expect(0x2D), let d = num(2) else { return nil }
        guard i < b.count, b[i] == 0x54 || b[i] == 0x74 || b[i] == 0x20 else { return nil }
        i += 1
        guard let h = num(2), expect(0x3A), let mi = num(2), expect(0x3A), let s = num(2) else { return nil }
        guard (1...12).contains(mo), d >= 1, d <= daysInMonth(y, mo), h <= 23, mi <= 59, s <= 60 else { return nil }
        var frac: Int64 = 0
        if i < b.count, b[i] == 0x2E {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 3 { frac = frac * 10 + Int64(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 3) { frac *= 10 }
        }
        var offsetMinutes: Int64 = 0
        guard i < b.count else { return nil }
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            let sign: Int64 = b[i] == 0x2D ? -1 : 1
            i += 1
            guard let oh = num(2), expect(0x3A), let om = num(2), oh <= 23, om <= 59 else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(y, mo, d)
        let secs = days * 86_400 + h * 3600 + mi * 60 + min(s, 59) - offsetMinutes * 60
        let ms = secs * 1000 + frac
        return range.contains(ms) ? ms : nil
    }

    private static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        var q = a / b, r = a % b
        if r < 0 { q -= 1; r += b }
        return (q, r)
    }

    private static func daysInMonth(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: return (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
