import Foundation

/// SIGINT and SIGTERM call `handler` (on a dispatch queue) instead of killing the process. The
/// sources must outlive the wait for it (`withExtendedLifetime`): an optimized build otherwise
/// releases, and so cancels, them at once, leaving the signals ignored.
func onStopSignals(_ handler: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    return [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler(handler: handler)
        source.resume()
        return source
    }
}
