import SLAMClient
import SLAMJSON

/// Sends many requests over one DEALER with a window of outstanding ones, returning the replies
/// in request order. For set-up and the final checks, where throughput matters, not latency.
func pipelined(_ client: SLAMClient, _ requests: [(type: String, body: String, key: String?)],
               window: Int = 500, timeoutMs: Int = 30_000) throws -> [Reply] {
    var replies = [Reply?](repeating: nil, count: requests.count)
    var index: [String: Int] = [:]
    var next = 0
    var outstanding = 0
    while next < requests.count || outstanding > 0 {
        while next < requests.count, outstanding < window {
            let r = requests[next]
            let id = try client.send(r.type, body: Array(r.body.utf8), key: r.key)
            index[id] = next
            next += 1
            outstanding += 1
        }
        guard let reply = try client.receive(timeoutMs: timeoutMs) else {
            throw ClientError("no reply within \(timeoutMs) ms (\(outstanding) outstanding)")
        }
        if let id = reply.requestId, let i = index.removeValue(forKey: id) {
            replies[i] = reply
            outstanding -= 1
        }
    }
    return replies.map { $0! }
}

/// A JSON string literal.
func q(_ s: String) -> String {
    var w = JSONWriter(capacity: s.utf8.count + 2)
    w.value(s)
    return w.string
}
