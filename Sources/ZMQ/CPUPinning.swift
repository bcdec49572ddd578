import CZMQ
#if canImport(Glibc)
import Glibc
#endif

/// Which CPUs the process may run on, for pinning threads to one (`ZMQContext(ioThreadCPUs:)`,
/// and the server's own threads). Linux only: elsewhere no CPU is allowed, so a server asked to
/// pin refuses to start.
public enum CPUPinning {
    /// Whether threads can be pinned here.
    public static var supported: Bool {
        #if os(Linux)
        return true
        #else
        return false
        #endif
    }

    /// The CPUs the calling thread may run on (its affinity mask), in order.
    public static var allowedCPUs: [Int] {
        #if os(Linux)
        var cpus = [Int32](repeating: 0, count: 1024)
        let n = cpus.withUnsafeMutableBufferPointer { slam_allowed_cpus($0.baseAddress, Int32($0.count)) }
        return cpus.prefix(Int(n)).map(Int.init)
        #else
        return []
        #endif
    }

    /// Whether the calling thread may run on `cpu`.
    public static func allowed(_ cpu: Int) -> Bool {
        #if os(Linux)
        return cpu >= 0 && cpu <= Int(Int32.max) && slam_cpu_allowed(Int32(cpu)) == 1
        #else
        return false
        #endif
    }
}
