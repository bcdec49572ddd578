import CZMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Names the calling thread for the operating system (`top -H`, `perf`, `/proc/<pid>/task/*/comm`
/// show it; Foundation's `Thread.name` does not reach the kernel on Linux) and, for background
/// work, lowers its scheduling priority.
///
/// On two cores the writer shares the CPUs with the ROUTER, the relay, the checkpointer and
/// ZeroMQ's I/O thread; every command waits for the writer, so a writer that waits for a core
/// delays them all. The checkpointer (copying WAL pages into the database file) and the relay
/// (publishing, with a lag target of 50 ms, not 5) can wait: they run at a higher `nice` value,
/// which any process may set for its own threads.
enum ThreadRole {
    /// The nice increment of background threads (0 is the process's own priority, 19 the lowest).
    static let backgroundNice: Int32 = 10

    /// Starts a thread named `name` running `body`, and returns once the thread runs (named, and
    /// at its priority).
    static func start(_ name: String, background: Bool = false, _ body: @escaping @Sendable () -> Void) {
        let running = DispatchSemaphore(value: 0)
        let thread = Thread {
            enter(name, background: background)
            running.signal()
            body()
        }
        thread.name = name
        thread.start()
        running.wait()
    }

    /// Names the calling thread (cut to 15 bytes, the kernel's limit) and sets its priority.
    private static func enter(_ name: String, background: Bool) {
        #if os(Linux)
        _ = slam_set_thread_name(String(decoding: name.utf8.prefix(15), as: UTF8.self))
        if background {
            // On Linux the nice value is per thread, and `who` 0 names the calling thread.
            let which = __priority_which_t(PRIO_PROCESS.rawValue)
            let current = getpriority(which, 0)
            _ = setpriority(which, 0, min(19, current + backgroundNice))
        }
        #endif
    }
}
