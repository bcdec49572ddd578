import Foundation
import SLAMJSON
import ZMQ

/// One event as a subscriber delivers it: PROTOCOL.md section 7's three frames, parsed, with the
/// header and body bytes as received (from the PUB socket, or re-serialized from `ReadEvents`).
public struct SubscribedEvent: Sendable {
    /// `<category>.<EventType>`, e.g. `reservation.SeatsHeld`.
    public let topic: String
    public let header: JSONObject
    public let body: JSON
    public let rawHeader: [UInt8]
    public let rawBody: [UInt8]
    /// The global, contiguous outbox sequence number.
    public let seq: Int64
    /// The sequence number within the event's category.
    public let categorySeq: Int64

    public var type: String? { header["type"]?.stringValue }
    public var storeId: String? { header["storeId"]?.stringValue }
    /// The part of the topic before the first dot.
    public var category: String { String(topic.prefix { $0 != "." }) }

    /// `{"topic":…,"header":…,"body":…}`: the event as one JSON object (no newline), the shape
    /// `ReadEvents` returns and `slam subscribe` prints.
    public var jsonLine: [UInt8] {
        var w = JSONWriter(capacity: topic.utf8.count + rawHeader.count + rawBody.count + 40)
        w.beginObject()
        w.field("topic", topic)
        w.key("header"); w.raw(rawHeader)
        w.key("body"); w.raw(rawBody)
        w.endObject()
        return w.bytes
    }

    /// From the three frames of a published message; nil when they are not a well-formed event.
    static func fromFrames(_ frames: [[UInt8]]) -> SubscribedEvent? {
        guard frames.count == 3,
              let topic = String(validating: frames[0], as: UTF8.self),
              let header = (try? JSONParser.parse(frames[1]))?.objectValue,
              let body = try? JSONParser.parse(frames[2])
        else { return nil }
        return make(topic: topic, header: header, body: body, rawHeader: frames[1], rawBody: frames[2])
    }

    /// From one line of `slam subscribe` (the same shape): nil when it is not an event.
    public static func fromLine(_ json: JSON) -> SubscribedEvent? { fromReadEvents(json) }

    /// From one element of `ReadEvents`' `events`.
    static func fromReadEvents(_ json: JSON) -> SubscribedEvent? {
        guard let topic = json["topic"]?.stringValue, let header = json["header"]?.objectValue,
              let body = json["body"] else { return nil }
        var h = JSONWriter(capacity: 256)
        h.value(.object(header))
        var b = JSONWriter(capacity: 256)
        b.value(body)
        return make(topic: topic, header: header, body: body, rawHeader: h.bytes, rawBody: b.bytes)
    }

    private static func make(topic: String, header: JSONObject, body: JSON, rawHeader: [UInt8],
                             rawBody: [UInt8]) -> SubscribedEvent? {
        guard let seq = header["seq"]?.int64Value, seq >= 1,
              let categorySeq = header["categorySeq"]?.int64Value, categorySeq >= 1 else { return nil }
        return SubscribedEvent(topic: topic, header: header, body: body, rawHeader: rawHeader, rawBody: rawBody,
                               seq: seq, categorySeq: categorySeq)
    }
}

public struct SubscriberError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The events come from another store than the one this subscriber followed.
        case differentStore
        /// The server answered `ReadEvents` with an error that retrying will not fix.
        case readEventsFailed
        /// The server's answers break PROTOCOL.md section 7 (a gap inside `ReadEvents`, a head
        /// behind the checkpoint, a malformed reply).
        case protocolViolation
        /// The server answered `OVERLOADED` or `INTERNAL` (busy, stopping, or a fault): asking
        /// again a little later may work.
        case serverBusy
    }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// What a subscriber has done so far (for tests, logs and metrics).
public struct SubscriberStats: Sendable, Equatable {
    /// Events handed to the handler, in all.
    public var delivered: Int64 = 0
    /// ...of which came live from the PUB socket...
    public var deliveredLive: Int64 = 0
    /// ...and from `ReadEvents`.
    public var deliveredFromReads: Int64 = 0
    /// Live messages at or below the checkpoint, ignored.
    public var duplicates: Int64 = 0
    /// Live messages that showed a gap (a `seq`, or `categorySeq`, beyond the next expected one).
    public var gaps: Int64 = 0
    /// Heartbeats received, and those that showed the subscriber behind.
    public var heartbeats: Int64 = 0
    public var heartbeatCatchUps: Int64 = 0
    /// With a category: heartbeats that showed the store, not the category, ahead, and so
    /// prompted one `ReadEvents` only to move the checkpoint to the head.
    public var headReads: Int64 = 0
    /// Catch-ups (each one or more `ReadEvents` calls), and the calls themselves.
    public var catchUps: Int64 = 0
    public var readEventsCalls: Int64 = 0
    /// `ReadEvents` calls that got no reply in time (the request socket is then remade) or a
    /// retryable error.
    public var retries: Int64 = 0
    /// Live messages that could not be parsed (treated as lost: recovered through `ReadEvents`).
    public var malformed: Int64 = 0
    /// Live messages dropped by `dropLiveMessageForTesting`.
    public var droppedForTesting: Int64 = 0
    /// Silences of the PUB socket (nothing, not even a heartbeat, for `Subscriber.silenceMs`),
    /// and the catch-ups they prompted.
    public var silences: Int64 = 0
    public var silentReads: Int64 = 0

    public init() {}
}

/// A subscriber following PROTOCOL.md section 7 (the ZeroMQ Guide's Clone pattern): it
/// subscribes first, then catches up through `ReadEvents` from its checkpoint, then applies live
/// messages; it ignores duplicates (`seq` at or below the checkpoint), detects gaps by `seq` (by
/// `categorySeq` when it follows one category) and from heartbeats, and fills them through
/// `ReadEvents` before going on. The handler sees every event exactly once, in order, whatever
/// was lost or repeated on the way, across restarts of either side (restart it with its
/// `checkpoint`, and `categoryCheckpoint` when it follows a category).
///
/// Its sockets are made by the first `run` and belong to the thread that calls `run`; use the
/// subscriber from that one thread.
public final class Subscriber {
    public let commandsEndpoint: String
    public let eventsEndpoint: String
    /// The category followed (`reservation`, `wallet`, …), or nil for every event.
    public let category: String?

    /// The global `seq` up to which every event of the subscription has been delivered (the
    /// `afterSeq` of the next `ReadEvents`). Without a category it is the `seq` of the last event
    /// delivered (or the starting point); with one it may run ahead of the last delivered event,
    /// to the head of a complete `ReadEvents` (a catch-up, or one a heartbeat prompts when the
    /// store has moved on in other categories), since no event of the category lies in between.
    public private(set) var checkpoint: Int64
    /// With a category: the `categorySeq` of the last event delivered, nil until one has been
    /// (or given at start). Gaps within the category are detected with it.
    public private(set) var categoryCheckpoint: Int64?
    /// The store followed: given at start, or learnt from the first event or heartbeat. Events
    /// or heartbeats of another store are an error (`SubscriberError.differentStore`).
    public private(set) var storeId: String?
    /// The highest `headSeq` seen in a heartbeat or a `ReadEvents` reply.
    public private(set) var knownHeadSeq: Int64 = 0
    public private(set) var stats = SubscriberStats()

    /// Called, on the thread that runs the subscriber, once for each `ReadEvents` call still
    /// without an answer after `noAnswerNoticeMs` (the server may be down, restarting or not
    /// there at all). The call goes on waiting until `requestTimeoutMs`, then is asked again.
    public var noAnswer: (() -> Void)?
    /// How long a `ReadEvents` call waits before `noAnswer` is called: a second, so that `slam
    /// subscribe` started against no server says so at once; it used to say it only when the call
    /// was asked again, 5 s or more after the start.
    public var noAnswerNoticeMs = 1000

    /// With nothing from the PUB socket for this long (no event and no heartbeat, which the relay
    /// sends every second), the subscriber catches up through `ReadEvents` every
    /// `silentReadIntervalMs` until a message comes again. The time counts within one `run` call
    /// (a caller running it in slices shorter than this never sees a silence), from the later of
    /// the last message and the end of the last catch-up. Without it, a wrong or unreachable
    /// events endpoint (a typo in the port, the two endpoints swapped) delivered the first
    /// catch-up and then nothing, saying nothing (audit); now events arrive at most that late.
    public var silenceMs = 3000
    public var silentReadIntervalMs = 1000
    /// Called, on the thread that runs the subscriber, when such a silence begins (`true`) and
    /// when a message from the PUB socket ends it (`false`).
    public var silence: ((Bool) -> Void)?
    /// The monotonic clock, in milliseconds, that silences are measured with (tests inject one).
    public var nowMs: () -> Int64 = { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    /// `ReadEvents`' page size, at most the protocol's maximum (1,000), which it defaults to.
    public var pageSize = 1000
    /// The page size asked for: within 1...1000, so that a short page reliably means "no more"
    /// (the server lowers a larger limit to its maximum).
    private var limit: Int { min(max(pageSize, 1), 1000) }
    /// How long to wait for a `ReadEvents` reply before remaking the request socket and
    /// retrying (queries are safe to repeat); taken as 0 to a day.
    public var requestTimeoutMs = 5000
    /// Test hook: a live event message this returns true for is dropped as if the network had
    /// lost it (it is neither applied nor counted as seen).
    public var dropLiveMessageForTesting: ((SubscribedEvent) -> Bool)?

    private let context: ZMQContext
    private let ownsContext: Bool
    private let receiveHighWaterMark: Int32
    private var sub: ZMQSocket?
    private var client: SLAMClient?
    private var needsCatchUp = true
    private var closed = false
    /// When the PUB socket last delivered a message (or the run began), whether it is silent
    /// (`silenceMs`), and when a silent subscriber reads next.
    private var lastMessageAt: Int64 = 0
    private var silent = false
    private var nextSilentRead: Int64 = 0

    /// - Parameters:
    ///   - category: follow one category (subscribes to `category.` and `$heartbeat`), or nil for all.
    ///   - afterSeq: the checkpoint to start from: the global `seq` of the last event already
    ///     handled (0: from the first event).
    ///   - afterCategorySeq: with a category, the `categorySeq` of the last event already handled
    ///     (learnt on the way when nil; 0 is implied when `afterSeq` is 0).
    ///   - storeId: the store the checkpoint belongs to, when known.
    ///   - receiveHighWaterMark: `ZMQ_RCVHWM` of the SUB socket (messages).
    ///   - context: a ZeroMQ context to share; a private one otherwise.
    public init(commandsEndpoint: String, eventsEndpoint: String, category: String? = nil, afterSeq: Int64 = 0,
                afterCategorySeq: Int64? = nil, storeId: String? = nil, receiveHighWaterMark: Int32 = 1000,
                context: ZMQContext? = nil) throws {
        precondition(afterSeq >= 0, "afterSeq must be at least 0")
        if let category {
            precondition(!category.isEmpty && !category.contains("."), "a category is a name without dots")
        }
        self.commandsEndpoint = commandsEndpoint
        self.eventsEndpoint = eventsEndpoint
        self.category = category
        self.checkpoint = afterSeq
        self.categoryCheckpoint = category == nil ? nil : (afterCategorySeq ?? (afterSeq == 0 ? 0 : nil))
        self.storeId = storeId
        self.receiveHighWaterMark = receiveHighWaterMark
        if let context {
            self.context = context
            ownsContext = false
        } else {
            self.context = try ZMQContext()
            ownsContext = true
        }
    }

    deinit { close() }

    /// Closes the sockets (and the private context). The subscriber cannot run again.
    public func close() {
        guard !closed else { return }
        closed = true
        sub?.close()
        sub = nil
        client?.close()
        client = nil
        if ownsContext { context.terminate() }
    }

    /// Runs on the calling thread until `stop()` returns true (checked at least every
    /// `pollTimeoutMs`, also while waiting for `ReadEvents`), delivering every event after the
    /// checkpoint to `handler`, once each, in order. The checkpoint advances past an event only
    /// once the handler has returned; an error from the handler stops the run and is rethrown
    /// (run again to retry that event). May be called again after it returns.
    public func run(until stop: () -> Bool, pollTimeoutMs: Int = 100,
                    handler: (SubscribedEvent) throws -> Void) throws {
        precondition(!closed, "the subscriber is closed")
        if sub == nil {
            // Subscribe first, then catch up (Clone pattern): once the subscription is live
            // (libzmq connects in the background) every message is queued on the SUB socket;
            // what is published before that is found by the catch-up or, failing that, shown
            // missing by the next message's seq or the next heartbeat.
            let s = try context.socket(.sub)
            try s.setLinger(ms: 0)
            try s.setReceiveHighWaterMark(receiveHighWaterMark)
            if let category {
                try s.subscribe(category + ".")
                try s.subscribe("$heartbeat")
            } else {
                try s.subscribe("")
            }
            try s.connect(eventsEndpoint)
            sub = s
            needsCatchUp = true
        }
        guard let sub else { return }
        var items = [ZMQPollItem.socket(sub)]
        // A silence is counted within a run (the time between two runs is the caller's), and
        // from the end of a catch-up: one that waited for a server not up yet is not the PUB's
        // silence (a review saw a start before the server's called a wrong --events).
        if !silent { lastMessageAt = nowMs() }
        while !stop() {
            if needsCatchUp {
                guard try catchUp(stop: stop, pollTimeoutMs: pollTimeoutMs, handler: handler) else { return }
                needsCatchUp = false
                if !silent { lastMessageAt = nowMs() }
                continue
            }
            if try zmqPoll(&items, timeoutMs: pollTimeoutMs) == 0 {
                checkSilence()
                continue
            }
            // Drain what is queued (a bounded batch, so `stop` is seen often), stopping early
            // when a message shows that a catch-up is needed: the catch-up covers what follows.
            var budget = 1000
            while budget > 0, !needsCatchUp, let frames = try sub.receive(dontWait: true) {
                budget -= 1
                heard()
                try apply(frames, handler: handler)
                if stop() { return }
            }
        }
    }

    /// A message came from the PUB socket: any silence is over.
    private func heard() {
        lastMessageAt = nowMs()
        if silent {
            silent = false
            silence?(false)
        }
    }

    /// Nothing came from the PUB socket within a poll: past `silenceMs` of that, a catch-up
    /// through `ReadEvents` every `silentReadIntervalMs`.
    private func checkSilence() {
        let now = nowMs()
        if !silent {
            guard now - lastMessageAt >= Int64(silenceMs) else { return }
            silent = true
            stats.silences += 1
            nextSilentRead = now
            silence?(true)
        }
        if now >= nextSilentRead {
            stats.silentReads += 1
            needsCatchUp = true
            nextSilentRead = now + Int64(max(silentReadIntervalMs, 1))
        }
    }

    /// The store's id and head, by `GetStats` (e.g. to start from the head: only new events).
    /// Throws `SubscriberError(.serverBusy)` when the server answers `OVERLOADED` or `INTERNAL`,
    /// which a caller may retry, and `ClientError` when it does not answer within `timeoutMs`.
    public static func head(commandsEndpoint: String, context: ZMQContext? = nil,
                            timeoutMs: Int = 10_000) throws -> (storeId: String, headSeq: Int64) {
        let client = try SLAMClient(endpoint: commandsEndpoint, context: context)
        defer { client.close() }
        let reply = try client.call("GetStats", timeoutMs: timeoutMs)
        if let code = reply.code, code == "OVERLOADED" || code == "INTERNAL" {
            throw SubscriberError(.serverBusy, "GetStats: \(String(decoding: reply.rawBody, as: UTF8.self))")
        }
        guard reply.ok, let storeId = reply.body["storeId"]?.stringValue,
              let head = reply.body["headSeq"]?.int64Value else {
            throw SubscriberError(.readEventsFailed, "GetStats failed: \(String(decoding: reply.rawBody, as: UTF8.self))")
        }
        return (storeId, head)
    }

    // MARK: Live messages

    private func apply(_ frames: [[UInt8]], handler: (SubscribedEvent) throws -> Void) throws {
        if frames.first == Array("$heartbeat".utf8) {
            try heartbeat(frames)
            return
        }
        guard let event = SubscribedEvent.fromFrames(frames) else {
            // Not a readable event: treat it as lost; ReadEvents serves the real one.
            stats.malformed += 1
            needsCatchUp = true
            return
        }
        if let category, event.category != category { return }
        if let hook = dropLiveMessageForTesting, hook(event) {
            stats.droppedForTesting += 1
            return
        }
        try checkStore(event.storeId)
        if event.seq <= checkpoint {
            stats.duplicates += 1
            return
        }
        let inOrder: Bool
        if category != nil {
            if let last = categoryCheckpoint {
                if event.categorySeq <= last {
                    stats.duplicates += 1
                    return
                }
                inOrder = event.categorySeq == last + 1
            } else {
                inOrder = false  // cannot tell: learn where the category stands through ReadEvents
            }
        } else {
            inOrder = event.seq == checkpoint + 1
        }
        guard inOrder else {
            stats.gaps += 1
            needsCatchUp = true
            return
        }
        try deliver(event, handler: handler)
        stats.deliveredLive += 1
    }

    private func heartbeat(_ frames: [[UInt8]]) throws {
        guard frames.count == 2, let hb = (try? JSONParser.parse(frames[1]))?.objectValue else {
            stats.malformed += 1
            return
        }
        stats.heartbeats += 1
        try checkStore(hb["storeId"]?.stringValue)
        guard let head = hb["headSeq"]?.int64Value else { return }
        knownHeadSeq = max(knownHeadSeq, head)
        if let category {
            // Behind in its category: catch up. Otherwise, when the store has moved on (other
            // categories), one cheap ReadEvents moves the checkpoint to the head, so it keeps up
            // with the store (and a restart from it reads less).
            let categoryHead = hb["categories"]?[category]?.int64Value ?? 0
            if categoryHead > (categoryCheckpoint ?? 0) && (categoryCheckpoint != nil || head > checkpoint) {
                stats.heartbeatCatchUps += 1
                needsCatchUp = true
            } else if head > checkpoint {
                stats.headReads += 1
                needsCatchUp = true
            }
        } else if head > checkpoint {
            stats.heartbeatCatchUps += 1
            needsCatchUp = true
        }
    }

    private func checkStore(_ id: String?) throws {
        guard let id else { return }
        if let storeId {
            guard id == storeId else {
                throw SubscriberError(.differentStore,
                                      "events of store \(id) arrived, but this subscriber follows store \(storeId)")
            }
        } else {
            storeId = id
        }
    }

    private func deliver(_ event: SubscribedEvent, handler: (SubscribedEvent) throws -> Void) throws {
        do {
            try handler(event)
        } catch {
            // Not delivered: the next run starts by reading from the checkpoint, this event first.
            needsCatchUp = true
            throw error
        }
        checkpoint = event.seq
        if category != nil { categoryCheckpoint = event.categorySeq }
        stats.delivered += 1
    }

    // MARK: Catch-up

    /// `ReadEvents {afterSeq: checkpoint}` until caught up with the head the server reports.
    /// Returns false when `stop` interrupted it (the checkpoint is consistent; run again to go on).
    private func catchUp(stop: () -> Bool, pollTimeoutMs: Int, handler: (SubscribedEvent) throws -> Void) throws -> Bool {
        stats.catchUps += 1
        let limit = self.limit
        while true {
            guard let page = try readEvents(afterSeq: checkpoint, stop: stop, pollTimeoutMs: pollTimeoutMs) else {
                return false
            }
            knownHeadSeq = max(knownHeadSeq, page.headSeq)
            for json in page.events {
                guard let event = SubscribedEvent.fromReadEvents(json) else {
                    throw SubscriberError(.protocolViolation, "ReadEvents returned a malformed event: \(json.serialized)")
                }
                try checkStore(event.storeId)
                if let category {
                    guard event.category == category else {
                        throw SubscriberError(.protocolViolation,
                                              "ReadEvents for category \(category) returned \(event.topic)")
                    }
                    guard event.seq > checkpoint else {
                        throw SubscriberError(.protocolViolation,
                                              "ReadEvents after seq \(checkpoint) returned seq \(event.seq)")
                    }
                    if let last = categoryCheckpoint, event.categorySeq != last + 1 {
                        throw SubscriberError(.protocolViolation,
                                              "ReadEvents returned categorySeq \(event.categorySeq) of \(category) after \(last)")
                    }
                } else {
                    guard event.seq == checkpoint + 1 else {
                        throw SubscriberError(.protocolViolation,
                                              "ReadEvents after seq \(checkpoint) returned seq \(event.seq)")
                    }
                }
                try deliver(event, handler: handler)
                stats.deliveredFromReads += 1
            }
            guard page.headSeq >= checkpoint else {
                throw SubscriberError(.protocolViolation,
                                      "the store's head (seq \(page.headSeq)) is behind this subscriber's checkpoint (\(checkpoint))")
            }
            if checkpoint >= page.headSeq { return true }
            if category != nil {
                if page.events.count < limit {
                    // A short page: no event of the category lies between the last one delivered
                    // and the head (the page and the head are read in one transaction).
                    checkpoint = page.headSeq
                    return true
                }
            } else if page.events.isEmpty {
                throw SubscriberError(.protocolViolation,
                                      "ReadEvents after seq \(checkpoint) returned nothing, yet the head is \(page.headSeq)")
            }
            if stop() { return false }
        }
    }

    private struct Page {
        var events: [JSON]
        var headSeq: Int64
    }

    /// One `ReadEvents` call, retried until it is answered (a server restarting, a lost
    /// request); nil when `stop` says so first.
    private func readEvents(afterSeq: Int64, stop: () -> Bool, pollTimeoutMs: Int) throws -> Page? {
        var body: JSONObject = ["afterSeq": .int(afterSeq), "limit": .int(Int64(limit))]
        if let category { body["category"] = .string(category) }
        var backoffMs = 50
        while true {
            if stop() { return nil }
            let client: SLAMClient
            if let c = self.client {
                client = c
            } else {
                client = try SLAMClient(endpoint: commandsEndpoint, context: context)
                self.client = client
            }
            stats.readEventsCalls += 1
            let id = try client.send("ReadEvents", .object(body))
            let sent = DispatchTime.now().uptimeNanoseconds
            let deadline = sent + UInt64(min(max(0, requestTimeoutMs), 86_400_000)) * 1_000_000
            var notice: UInt64? = sent + UInt64(min(max(1, noAnswerNoticeMs), 86_400_000)) * 1_000_000
            var reply: Reply?
            while reply == nil {
                if stop() { return nil }
                let now = DispatchTime.now().uptimeNanoseconds
                if let at = notice, now >= at {
                    notice = nil
                    noAnswer?()
                }
                if now >= deadline { break }
                let wait = min(pollTimeoutMs, max(1, Int((min(deadline, notice ?? deadline) - now) / 1_000_000)))
                if let r = try client.receive(timeoutMs: wait), r.requestId == id { reply = r }
            }
            guard let reply else {
                // No answer: the server may be restarting. Remake the socket (a fresh
                // connection, no stale replies) and ask again.
                stats.retries += 1
                if notice != nil { noAnswer?() }
                client.close()
                self.client = nil
                continue
            }
            if reply.ok {
                guard let events = reply.body["events"]?.arrayValue, let head = reply.body["headSeq"]?.int64Value else {
                    throw SubscriberError(.protocolViolation,
                                          "malformed ReadEvents reply: \(String(decoding: reply.rawBody, as: UTF8.self))")
                }
                return Page(events: events, headSeq: head)
            }
            let code = reply.code ?? "?"
            guard code == "OVERLOADED" || code == "INTERNAL" else {
                throw SubscriberError(.readEventsFailed,
                                      "ReadEvents failed: \(String(decoding: reply.rawBody, as: UTF8.self))")
            }
            stats.retries += 1
            // Back off before asking again, still watching `stop`.
            let until = DispatchTime.now().uptimeNanoseconds + UInt64(backoffMs) * 1_000_000
            while DispatchTime.now().uptimeNanoseconds < until {
                if stop() { return nil }
                Thread.sleep(forTimeInterval: Double(min(pollTimeoutMs, 20)) / 1000)
            }
            backoffMs = min(backoffMs * 2, 1000)
        }
    }
}
