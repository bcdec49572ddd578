import GRDB
import SLAMDomain
import SLAMStore

/// Records an accepted decision: each event appended to its stream at the version the decision
/// state saw (so a stale state fails the append instead of forking a stream), its read models
/// updated inline, and the state evolved. Used by the server's writer and by the store
/// generator, inside their transaction. Returns the position of the last event the command itself
/// caused (`Cause.command`), nil when every event was the server's own (`system:*`).
public enum DecisionRecorder {
    @discardableResult
    public static func record(_ decision: Decision, causationId: String, now: Millis, state: inout DomainState,
                              writer: StoreWriter, db: Database) throws -> Int64? {
        var lastOwn: Int64?
        for (event, cause) in decision.events {
            let causation: String
            switch cause {
            case .command: causation = causationId
            case .system(let name): causation = name
            }
            let positions = try writer.append(db, streamId: event.streamId, expected: .exact(state.streamVersion(of: event)),
                                              events: [NewEvent(event, occurredAt: now, causationId: causation)])
            try Projector.apply(event, position: positions[0], occurredAt: now, db: db, statements: writer.statements)
            state.evolve(event, at: now)
            if case .command = cause { lastOwn = positions[0] }
        }
        return lastOwn
    }
}
