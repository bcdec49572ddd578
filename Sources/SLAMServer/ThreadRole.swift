import CZMQ
import Foundation
import ZMQ
#if canImport(Glibc)
import Glibc
#endif

/// Names the calling thread for the operating system (`top -H`, `perf`, `/proc/<pid>/task/*/comm`
/// show it; Foundation's `Thread.name` does not reach the kernel on Linux) and sets its
/// scheduling priority by its role.
///
/// On two cores the writer shares the CPUs with the ROUTER, the relay, the checkpointer,
/// ZeroMQ's I/O thread and, in a benchmark, the load generator; every command waits for the
/// writer, so a writer that waits for a core delays them all. So the writer asks for a `nice`
/// value 10 below the process's (granted to root or with CAP_SYS_NICE; refused otherwise, and
/// then it keeps the process's priority), and the checkpointer (copying WAL pages into the
/// database file) and the relay (publishing, with a lag target of 50 ms, not 5) take one 10
/// above, which any process may do. Measured at 10,000 commands/s offered (README,
/// Performance): a p99 of 6.4–7.2 ms over four runs with the writer raised, 6.6–30 ms without.
///
/// A thread may also be pinned to one CPU (`ServerConfig.writerCPU`, `ioCPU`): by default the
/// scheduler moves the writer, the ROUTER and ZeroMQ's I/O thread between the cores as the load
/// generator's threads come and go, and every move lands a thread on a core whose caches hold
/// another's data. With the writer on one core and the ROUTER with the I/O thread on the other,
/// measured under the rush (README, Performance), the median latency at 10,000 commands/s
/// offered fell by about half and the closed-loop ceiling rose. It is not the default: on a
/// machine shared with other work a pinned thread cannot leave a busy core.
enum ThreadRole {
    enum Priority {
        /// The writer: raised when permitted.
        case foreground
        /// The process's own.
        case normal
        /// The checkpointer and the relay.
        case background

        /// The change of nice value asked for (negative: a higher priority).
        var niceChange: Int32 {
            switch self {
            case .foreground: return -10
            case .normal: return 0
            case .background: return 10
            }
        }
    }

    /// Starts a thread named `name` running `body`, and returns once the thread runs (named, at
    /// its priority, and on `cpu` alone when one is given).
    static func start(_ name: String, priority: Priority = .normal, cpu: Int? = nil,
                      _ body: @escaping @Sendable () -> Void) {
        let running = DispatchSemaphore(value: 0)
        let thread = Thread {
            enter(name, priority: priority)
            if let cpu { CPUPinning.pinCallingThread(to: cpu, name: name) }
            running.signal()
            body()
        }
        thread.name = name
        thread.start()
        running.wait()
    }

    /// Names the calling thread (cut to 15 bytes, the kernel's limit) and sets its priority.
    private static func enter(_ name: String, priority: Priority) {
        #if os(Linux)
        _ = slam_set_thread_name(String(decoding: name.utf8.prefix(15), as: UTF8.self))
        guard priority.niceChange != 0 else { return }
        // On Linux the nice value is per thread, and `who` 0 names the calling thread. A refused
        // raise (EPERM) leaves the thread at the process's priority.
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let current = getpriority(which, 0)
        _ = setpriority(which, 0, max(-20, min(19, current + priority.niceChange)))
        #endif
    }
}

/// Pinning a thread to one CPU; `CPUPinning` itself (which CPUs may be used) is in the ZMQ
/// module, where `ZMQContext` checks the CPUs of its own threads.
extension CPUPinning {
    /// Pins the calling thread to `cpu`. `Server.init` has checked the CPU, so a refusal here
    /// means the process's CPUs changed since; it is logged and the thread runs wherever the
    /// scheduler puts it. (ZeroMQ's threads, pinned by libzmq, stop the process instead: an
    /// assertion of libzmq's.)
    static func pinCallingThread(to cpu: Int, name: String) {
        #if os(Linux)
        if slam_pin_calling_thread(Int32(clamping: cpu)) != 0 {
            let error = errno
            logError("\(name) could not be pinned to CPU \(cpu): \(String(cString: strerror(error)))")
        }
        #endif
    }
}
