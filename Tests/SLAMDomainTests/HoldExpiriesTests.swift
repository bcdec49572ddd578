import SLAMDomain
import Testing

/// The schedule's holds by expiry (`ScheduleState.holdsExpiring`), against a plain filter of
/// the holds still held, through random holds and ends.
@Suite("Holds by expiry")
struct HoldExpiriesTests {
    @Test("holdsExpiring(before:) is every held hold due before the time, in expiry order", arguments: [1, 2, 3, 4, 5])
    func matchesAFilter(seed: Int) {
        var rng = Rng(state: UInt64(seed))
        var schedule = ScheduleState(definition: Fixture.definitionX, version: 1)
        var expiresAt: [String: Millis] = [:]
        var held = Set<String>()
        var order: [String] = []  // the held ones, to pick one to end
        for step in 0..<600 {
            if held.isEmpty || rng.next(3) > 0 {
                let id = "res_\(step)"
                let at = Millis(rng.next(1_000))  // ties included
                schedule.holdRecorded(id, expiresAt: at)
                expiresAt[id] = at
                held.insert(id)
                order.append(id)
            } else {
                let id = order.remove(at: rng.next(order.count))
                schedule.holdEnded(id)
                held.remove(id)
            }
            let now = Millis(rng.next(1_100))
            let expected = held.filter { expiresAt[$0]! < now }.sorted { (expiresAt[$0]!, $0) < (expiresAt[$1]!, $1) }
            #expect(schedule.holdsExpiring(before: now) == expected)
            let skip = Set(expected.prefix(rng.next(3)))  // as a hold skips the lapsed holds it records itself
            #expect(schedule.firstHoldExpiring(before: now) { !skip.contains($0) } == expected.first { !skip.contains($0) })
            #expect(schedule.held == held)
        }
        // Entries of ended holds are dropped once on top: ending every hold leaves none.
        for id in order { schedule.holdEnded(id) }
        #expect(schedule.expiries.count == 0)
    }

    @Test("ending a hold that is not held changes nothing")
    func endingTwice() {
        var schedule = ScheduleState(definition: Fixture.definitionX, version: 1)
        schedule.holdRecorded("res_a", expiresAt: 10)
        schedule.holdEnded("res_a")
        schedule.holdEnded("res_a")
        schedule.holdEnded("res_never")
        #expect(schedule.held.isEmpty && schedule.expiries.count == 0)
        #expect(schedule.holdsExpiring(before: 100).isEmpty)
        #expect(schedule.firstHoldExpiring(before: 100) { _ in true } == nil)
    }
}
