import SLAMDomain
import SLAMJSON
import Testing

@Suite("RegisterUser")
struct RegisterUserTests {
    @Test("registers a user with an empty wallet")
    func registers() {
        Scenario()
            .when(.registerUser(name: "Alice"), at: T.now)
            .then([.command(.userRegistered(userId: "usr_1", name: "Alice"))],
                  result: ["userId": "usr_1", "name": "Alice", "balance": 0])
    }

    @Test("the same name twice is two users")
    func sameNameTwice() {
        Scenario()
            .when(.registerUser(name: "Alice"), at: T.now)
            .then([.command(.userRegistered(userId: "usr_1", name: "Alice"))])
            .when(.registerUser(name: "Alice"), at: T.now)
            .then([.command(.userRegistered(userId: "usr_2", name: "Alice"))],
                  result: ["userId": "usr_2", "name": "Alice", "balance": 0])
    }
}

@Suite("ChargePoints")
struct ChargePointsTests {
    struct Accepted: Sendable, CustomTestStringConvertible {
        var balance: Int64
        var amount: Int64
        var testDescription: String { "\(amount) on \(balance)" }
    }

    @Test("a charge from 1 to 1,000,000 that keeps the balance within 1,000,000 is recorded",
          arguments: [
              Accepted(balance: 0, amount: 1),
              Accepted(balance: 0, amount: 1_000_000),
              Accepted(balance: 999_999, amount: 1),
              Accepted(balance: 400_000, amount: 600_000),
          ])
    func accepted(_ c: Accepted) {
        given(c.balance == 0 ? [] : [.pointsCharged(userId: alice, amount: c.balance, balance: c.balance)])
            .when(.chargePoints(userId: alice, amount: c.amount), at: T.now)
            .then([.command(.pointsCharged(userId: alice, amount: c.amount, balance: c.balance + c.amount))],
                  result: ["userId": .string(alice), "balance": .int(c.balance + c.amount)])
    }

    struct Rejected: Sendable, CustomTestStringConvertible {
        var balance: Int64
        var amount: Int64
        var code: ErrorCode
        var testDescription: String { "\(amount) on \(balance) is \(code.rawValue)" }
    }

    // The amount's range comes first (PROTOCOL.md section 4): an amount above 1,000,000, though
    // over the balance cap whatever the balance, is INVALID_AMOUNT.
    @Test("an amount out of range or over the balance cap is refused",
          arguments: [
              Rejected(balance: 0, amount: 0, code: .invalidAmount),
              Rejected(balance: 0, amount: -1, code: .invalidAmount),
              Rejected(balance: 0, amount: .min, code: .invalidAmount),
              Rejected(balance: 1_000_000, amount: 0, code: .invalidAmount),
              Rejected(balance: 1_000_000, amount: -5, code: .invalidAmount),
              Rejected(balance: 0, amount: 1_000_001, code: .invalidAmount),
              Rejected(balance: 0, amount: .max, code: .invalidAmount),
              Rejected(balance: 1_000_000, amount: 1_000_001, code: .invalidAmount),
              Rejected(balance: 1_000_000, amount: 1, code: .balanceLimitExceeded),
              Rejected(balance: 500_000, amount: 500_001, code: .balanceLimitExceeded),
          ])
    func rejected(_ c: Rejected) {
        given(c.balance == 0 ? [] : [.pointsCharged(userId: alice, amount: c.balance, balance: c.balance)])
            .when(.chargePoints(userId: alice, amount: c.amount), at: T.now)
            .thenRejected(c.code)
    }

    @Test("BALANCE_LIMIT_EXCEEDED names the balance and the cap")
    func balanceLimitDetails() {
        given([.pointsCharged(userId: alice, amount: 700_000, balance: 700_000)])
            .when(.chargePoints(userId: alice, amount: 300_001), at: T.now)
            .thenRejected(.balanceLimitExceeded, details: ["balance": 700_000, "limit": 1_000_000])
    }

    @Test("a balance above the cap after a refund takes no more charges")
    func aboveCapAfterRefund() {
        given([
            .pointsCharged(userId: alice, amount: 1_000_000, balance: 1_000_000),
            .pointsRefunded(userId: alice, amount: 500, balance: 1_000_500, reservationId: "res_old"),
        ])
        .when(.chargePoints(userId: alice, amount: 1), at: T.now)
        .thenRejected(.balanceLimitExceeded)
    }

    @Test("an unknown user is USER_NOT_FOUND, before the amount is judged", arguments: [Int64(100), 0, 2_000_000])
    func unknownUser(amount: Int64) {
        given()
            .when(.chargePoints(userId: "usr_nobody", amount: amount), at: T.now)
            .thenRejected(.userNotFound)
    }

    @Test("a second charge adds to the first")
    func chargesAddUp() {
        given()
            .when(.chargePoints(userId: alice, amount: 300), at: T.now)
            .then([.command(.pointsCharged(userId: alice, amount: 300, balance: 300))])
            .when(.chargePoints(userId: alice, amount: 200), at: T.now + T.second)
            .then([.command(.pointsCharged(userId: alice, amount: 200, balance: 500))],
                  result: ["userId": .string(alice), "balance": 500])
    }

    @Test("a wallet is per user")
    func walletsArePerUser() {
        given([.pointsCharged(userId: bob, amount: 900_000, balance: 900_000)])
            .when(.chargePoints(userId: alice, amount: 200_000), at: T.now)
            .then([.command(.pointsCharged(userId: alice, amount: 200_000, balance: 200_000))])
    }
}
