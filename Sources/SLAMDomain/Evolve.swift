extension DomainState {
    /// Folds one event into the state. Events about aggregates not in memory are ignored: the
    /// server loads every aggregate a command touches before deciding it.
    public mutating func evolve(_ event: DomainEvent, at occurredAt: Millis) {
        switch event {
        case .userRegistered(let userId, let name):
            users[userId] = UserState(userId: userId, name: name, balance: 0, historyCount: 0, walletVersion: 0)
        case .pointsCharged(let userId, _, let balance), .pointsUsed(let userId, _, let balance, _),
             .pointsRefunded(let userId, _, let balance, _):
            users[userId]?.balance = balance
            users[userId]?.historyCount += 1
            users[userId]?.walletVersion += 1
        case .concertCreated(let concertId, let name, let artist):
            concerts[concertId] = ConcertState(concertId: concertId, name: name, artist: artist)
        case .concertScheduled(let def):
            schedules[def.scheduleId] = ScheduleState(definition: def, version: 1)
            if let policy = def.queue {
                queues[def.scheduleId] = QueueState(scheduleId: def.scheduleId, policy: policy, version: 0)
            }
        case .scheduleSoldOut(let scheduleId):
            schedules[scheduleId]?.soldOut = true
            schedules[scheduleId]?.version += 1
        case .scheduleReopened(let scheduleId):
            schedules[scheduleId]?.soldOut = false
            schedules[scheduleId]?.version += 1
        case .seatsHeld(let ref, let expiresAt):
            reservations[ref.reservationId] = ReservationState(ref: ref, status: .held, expiresAt: expiresAt,
                                                               createdAt: occurredAt, version: 1)
            if schedules[ref.scheduleId] != nil {
                for n in ref.seatNumbers { schedules[ref.scheduleId]!.seatOwner[n - 1] = ref.reservationId }
                schedules[ref.scheduleId]!.available -= ref.seatNumbers.count
                schedules[ref.scheduleId]!.liveByUser[ref.userId, default: []].append(ref.reservationId)
                schedules[ref.scheduleId]!.holdRecorded(ref.reservationId, expiresAt: expiresAt)
            }
        case .reservationConfirmed(let ref):
            reservations[ref.reservationId]?.status = .confirmed
            reservations[ref.reservationId]?.version += 1
            schedules[ref.scheduleId]?.holdEnded(ref.reservationId)
        case .holdExpired(let ref):
            end(ref, as: .expired)
        case .holdReleased(let ref):
            end(ref, as: .released)
        case .reservationCancelled(let ref, _):
            end(ref, as: .cancelled)
        case .queueJoined(let ref):
            tokens[ref.tokenId] = TokenState(ref: ref, status: .waiting, joinedAt: occurredAt, activeUntil: nil)
            queues[ref.scheduleId]?.appendWaiting(ref.tokenId)
            queues[ref.scheduleId]?.liveByUser[ref.userId] = ref.tokenId
            queues[ref.scheduleId]?.version += 1
        case .queueTokenActivated(let ref, let activeUntil):
            tokens[ref.tokenId]?.status = .active
            tokens[ref.tokenId]?.activeUntil = activeUntil
            if var q = queues.removeValue(forKey: ref.scheduleId) {
                q.removeWaiting(ref.tokenId)
                q.appendActive(ref.tokenId)
                q.version += 1
                queues[ref.scheduleId] = q
            }
        case .queueTokenExpired(let ref), .queueLeft(let ref):
            let wasActive = tokens[ref.tokenId]?.status == .active
            tokens[ref.tokenId]?.status = .expired
            if var q = queues.removeValue(forKey: ref.scheduleId) {
                if wasActive {
                    q.removeActive(ref.tokenId)
                } else {
                    q.removeWaiting(ref.tokenId)
                }
                if q.liveByUser[ref.userId] == ref.tokenId { q.liveByUser[ref.userId] = nil }
                q.version += 1
                queues[ref.scheduleId] = q
            }
        }
    }

    /// A reservation leaves the live states: its seats are free again.
    private mutating func end(_ ref: ReservationRef, as status: ReservationStatus) {
        reservations[ref.reservationId]?.status = status
        reservations[ref.reservationId]?.version += 1
        // Take the schedule out while mutating so its seat array is not copied.
        guard var s = schedules.removeValue(forKey: ref.scheduleId) else { return }
        for n in ref.seatNumbers where s.seatOwner[n - 1] == ref.reservationId { s.seatOwner[n - 1] = nil }
        s.available += ref.seatNumbers.count
        if var live = s.liveByUser[ref.userId] {
            live.removeAll { $0 == ref.reservationId }
            s.liveByUser[ref.userId] = live.isEmpty ? nil : live
        }
        s.holdEnded(ref.reservationId)
        schedules[ref.scheduleId] = s
    }
}
