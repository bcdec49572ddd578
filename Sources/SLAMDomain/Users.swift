import SLAMJSON

/// Users and their wallets.
enum Users {
    static func register<G: IdGenerator>(name: String, now: Millis, ids: inout G) -> Decision {
        let userId = ids.next(.user, at: now)
        return Decision(events: [(.userRegistered(userId: userId, name: name), .command)],
                        result: ["userId": .string(userId), "name": .string(name), "balance": .int(0)])
    }

    static func charge(userId: String, amount: Int64, state: DomainState) throws(Rejection) -> Decision {
        guard let user = state.users[userId] else { throw Rejection(.userNotFound, "user \(userId) not found") }
        // The amount's range first (PROTOCOL.md section 4: "an integer amount out of range is
        // INVALID_AMOUNT"), then what it does to the balance: a charge above 1,000,000, which
        // would break the cap too, is INVALID_AMOUNT (README, "Where PROTOCOL.md left a choice").
        guard (1...Limits.maxCharge).contains(amount) else {
            throw Rejection(.invalidAmount, "amount must be from 1 to \(Limits.maxCharge)",
                            details: ["field": .string("amount")])
        }
        guard amount <= Limits.maxBalance - user.balance else {
            throw Rejection(.balanceLimitExceeded,
                            "charging \(amount) would take the balance \(user.balance) over \(Limits.maxBalance)",
                            details: ["balance": .int(user.balance), "limit": .int(Limits.maxBalance)])
        }
        let balance = user.balance + amount
        return Decision(events: [(.pointsCharged(userId: userId, amount: amount, balance: balance), .command)],
                        result: ["userId": .string(userId), "balance": .int(balance)])
    }
}

extension DomainState {
    func requireUser(_ userId: String) throws(Rejection) -> UserState {
        guard let user = users[userId] else { throw Rejection(.userNotFound, "user \(userId) not found") }
        return user
    }
}
