import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGINT and SIGTERM, taken by a thread of their own instead of killing the process.
///
/// `init` blocks both in the calling thread, and so in every thread started after it (a new thread
/// inherits its creator's mask): from then on a signal waits, pending, until the thread that
/// `onSignal` starts takes it with `sigwait`, and none is lost. Create it first, before any other
/// thread starts: a thread started earlier would still take the signal, and die of it.
///
/// It replaces dispatch signal sources, which needed both signals ignored (`SIG_IGN`) and
/// registered themselves asynchronously after `resume()`: a SIGINT that came in between, right
/// after `SLAM ready` on a loaded machine, was dropped, and the server never stopped (a CI run's
/// test waited 120 s for its exit).
final class StopSignals: @unchecked Sendable {
    private let signals: sigset_t

    init() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        self.signals = signals
    }

    /// Calls `handler`, on a thread of its own, for each signal that comes, or came since `init`.
    func onSignal(_ handler: @escaping @Sendable () -> Void) {
        let signals = self.signals
        let thread = Thread {
            var waitingFor = signals
            while true {
                var signal: Int32 = 0
                if sigwait(&waitingFor, &signal) == 0 { handler() }
            }
        }
        thread.name = "slam-signals"
        thread.start()
    }
}
