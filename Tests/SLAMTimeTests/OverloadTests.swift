import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import Testing

/// Time-driven commands never wait behind clients (DESIGN.md section 3): with the command queue
/// flooded (clients getting OVERLOADED), the sweep still records a due expiry and a queue
/// admission, because sweeps do not go through that queue.
@Suite("Sweeps bypass the command queue")
struct OverloadTests {
    @Test func expiryAndAdmissionAreRecordedUnderAFlood() throws {
        let clock = manualClock()
        try withHarness(clock: clock, configure: { $0.commandQueueCapacity = 2 }) { h in
            let s = try h.scenario()
            let alice = try s.registerUser("alice", charge: 10_000)
            let bob = try s.registerUser("bob")
            let flooder = try s.registerUser("flooder")
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 4)
            // The first token's time ends at 200 s, when the second's begins (until 400 s): still
            // active when the hold's 300 s are past.
            let queued = try openQueuedSchedule(s, now: clock.now(), maxActive: 1, activeTtl: 200, waitingTtl: 3_600)
            let held = try #require(try hold(s, alice, scheduleId, [1, 2]).body["reservationId"]?.string)
            let first = try #require(try join(s, alice, queued)["tokenId"]?.string)
            let second = try #require(try join(s, bob, queued)["tokenId"]?.string)
            #expect(try queueStatus(s, second).status == "WAITING")

            // The flood: rounds of pipelined commands from another thread until told to stop.
            let stop = Locked(false)
            let overloaded = Locked(0)
            let executed = Locked(0)
            let failure = Locked<String?>(nil)
            let finished = DispatchSemaphore(value: 0)
            let endpoint = h.commandsEndpoint
            let context = h.context
            let flood = Thread {
                defer { finished.signal() }
                do {
                    let client = try SLAMClient(endpoint: endpoint, context: context)
                    defer { client.close() }
                    let body = Array("{\"userId\":\"\(flooder)\",\"amount\":1}".utf8)
                    while !stop.value {
                        let n = 2_000
                        for _ in 0..<n { try client.send("ChargePoints", body: body, key: UUID().uuidString) }
                        var got = 0
                        while got < n {
                            guard let r = try client.receive(timeoutMs: 30_000) else {
                                throw ClientError("flood: no reply within 30 s")
                            }
                            got += 1
                            if r.code == "OVERLOADED" { overloaded.update { $0 += 1 } } else { executed.update { $0 += 1 } }
                        }
                    }
                } catch {
                    failure.update { $0 = "\(error)" }
                }
            }
            flood.start()
            var joined = false
            defer {
                if !joined {
                    stop.update { $0 = true }
                    _ = finished.wait(timeout: .now() + 60)
                }
            }
            try pollUntil("OVERLOADED replies") { overloaded.value > 0 || failure.value != nil }
            #expect(failure.value == nil, "\(failure.value ?? "")")

            // Both become due while the flood goes on.
            let overloadedBefore = overloaded.value
            clock.advance(by: 300_001)
            try pollUntil("the hold expired under the flood") { try reservation(s, held)["status"] == "EXPIRED" }
            try pollUntil("the next token admitted under the flood") { try queueStatus(s, second).status == "ACTIVE" }
            let flooding = !stop.value && failure.value == nil
            #expect(flooding, "the flood was still running: \(failure.value ?? "")")
            try pollUntil("more OVERLOADED replies") { overloaded.value > overloadedBefore || failure.value != nil }
            stop.update { $0 = true }
            #expect(finished.wait(timeout: .now() + 60) == .success)
            joined = true
            #expect(failure.value == nil, "\(failure.value ?? "")")
            #expect(executed.value > 0)

            #expect(try queueStatus(s, first).status == "EXPIRED")
            let expiry = try readEvents(s, category: "reservation").filter { $0.type == "HoldExpired" }
            #expect(expiry.count == 1 && expiry.first?.causationId == "system:expiry")
            #expect(try seatStatuses(s, scheduleId)[1] == "AVAILABLE")
            // Every executed charge is accounted for: nothing was lost in the flood.
            #expect(try s.must("GetUser", ["userId": .string(flooder)])["balance"]?.int == Int64(executed.value))
        }
    }
}
