import Foundation
import ZMQ

/// A safety net only: every blocking receive in these tests fails after this long instead of
/// hanging, never used to wait for something to happen.
let safetyTimeoutMs: Int32 = 5_000

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A socket that drops unsent messages on close and gives up a blocking receive after the
/// safety timeout.
func makeSocket(_ context: ZMQContext, _ type: ZMQSocketType) throws -> ZMQSocket {
    let socket = try context.socket(type)
    try socket.setLinger(ms: 0)
    try socket.setReceiveTimeout(ms: safetyTimeoutMs)
    return socket
}

/// Binds `socket` to an ephemeral loopback TCP port and returns the resolved endpoint.
func bindEphemeral(_ socket: ZMQSocket) throws -> String {
    try socket.bind("tcp://127.0.0.1:*")
    return try socket.lastEndpoint
}

/// A fresh `ipc://` endpoint inside a new temporary directory (removed by `remove()`).
struct TemporaryIPC {
    let directory: URL
    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("zmq-tests-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }
    func endpoint(_ name: String) -> String { "ipc://\(directory.path)/\(name)" }
    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// Runs `body` on a new OS thread (not the Swift concurrency pool, which blocking tests must not
/// starve) and lets the caller wait for it to finish.
final class BackgroundThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    init(_ body: @escaping @Sendable () -> Void) {
        let done = self.done
        Thread.detachNewThread {
            body()
            done.signal()
        }
    }
    /// Waits for the thread's body to return; false if it did not within `seconds`.
    func join(seconds: Double = 10) -> Bool {
        done.wait(timeout: .now() + seconds) == .success
    }
}

/// Whether this machine can bind a TCP socket to IPv6 loopback at all (plain BSD sockets).
func ipv6LoopbackWorks() -> Bool {
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 }
    }
}
