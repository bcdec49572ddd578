import ArgumentParser
import Foundation

/// Checks of option values that the commands share, made in `validate()`, so that a value that
/// cannot work is refused before anything runs (exit 64, naming the option) instead of failing
/// later with an error of ZeroMQ's or SQLite's, or after a store was created or a run was made.
enum OptionCheck {
    /// A ZeroMQ endpoint a SLAM process can use: `tcp://HOST:PORT` or `ipc://PATH`. A port is
    /// 1 to 65535, or for an endpoint to bind (`bind`), `*` or 0 (a port the system picks).
    /// libzmq itself takes a port above 65535 modulo 65536 and a negative one likewise, so
    /// `:99999` would bind 34463 without a word; and an `inproc://` endpoint cannot be reached
    /// from another process.
    static func endpoint(_ value: String, option: String, bind: Bool) throws {
        let expected = "tcp://HOST:PORT or ipc://PATH"
        if value.hasPrefix("ipc://") {
            let path = value.utf8.dropFirst("ipc://".count)
            guard !path.isEmpty else { throw ValidationError("\(option) \(value) has no path; expected \(expected)") }
            // A unix socket's path holds at most 107 bytes (sun_path); longer, the bind fails late.
            guard path.count <= 107 else { throw ValidationError("\(option) \(value): an ipc:// path is at most 107 bytes") }
            return
        }
        guard value.hasPrefix("tcp://") else {
            throw ValidationError("\(option) must be \(expected), not \"\(value)\"")
        }
        let rest = value.dropFirst("tcp://".count)
        guard let colon = rest.lastIndex(of: ":"), colon != rest.startIndex else {
            throw ValidationError("\(option) \(value) has no host or no port; expected \(expected)")
        }
        let host = String(rest[..<colon]), port = rest[rest.index(after: colon)...]
        if bind { try bindHost(host, option: option, endpoint: value) }
        if bind, port == "*" { return }
        guard (1...5).contains(port.count), port.allSatisfy(\.isASCIIDigit), let n = Int(port),
              n <= 65535, n >= (bind ? 0 : 1) else {
            throw ValidationError("\(option) \(value): the port must be \(bind ? "0 to 65535 or *" : "1 to 65535")")
        }
    }

    /// The host of an endpoint to bind: libzmq binds `*`, an IP address (IPv6 in brackets) or a
    /// network interface's name, and resolves no host name: `tcp://localhost:5555` failed only
    /// once the store was created, with "No such device".
    private static func bindHost(_ host: String, option: String, endpoint: String) throws {
        if host == "*" { return }
        var address = in6_addr()
        if host.hasPrefix("["), host.hasSuffix("]"), host.count > 2 {
            if inet_pton(AF_INET6, String(host.dropFirst().dropLast()), &address) == 1 { return }
        } else if inet_pton(AF_INET, host, &address) == 1 || if_nametoindex(host) != 0 {
            return
        }
        throw ValidationError("\(option) \(endpoint): to bind, the host must be an IP address (IPv6 in brackets), * or a "
                              + "network interface's name such as lo; a host name is not looked up (for this machine only, use 127.0.0.1)")
    }

    /// The most decoding threads `--decoders` may ask for: each holds a share of the log, and
    /// 100,000 of them exhausted the process (a crash) where a few dozen already gain nothing on
    /// any machine this runs on.
    static let maxDecoders = 256

    static func decoders(_ value: Int?) throws {
        if let value, !(1...maxDecoders).contains(value) {
            throw ValidationError("--decoders must be 1 to \(maxDecoders)")
        }
    }

    /// A database path: not empty (SQLite would open a temporary in-memory database), and not a
    /// folder.
    static func databasePath(_ path: String, option: String = "--db") throws {
        guard !path.isEmpty else { throw ValidationError("\(option) must name a database file") }
        var info = stat()
        guard stat(path, &info) == 0 else { return }  // a new store
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw ValidationError("\(option) \(path) is a folder, not a database file")
        default: throw ValidationError("\(option) \(path) is not a regular file")
        }
    }

    /// A folder that exists and that this process may write into.
    static func writableFolder(_ path: String, option: String) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw ValidationError("\(option) \(path) does not exist")
        }
        guard isFolder.boolValue else { throw ValidationError("\(option) \(path) is not a folder") }
        guard access(path, W_OK | X_OK) == 0 else { throw ValidationError("\(option) \(path) is not writable") }
    }

    /// A file to be written: not a folder; its folder exists and is writable (a file replaced
    /// atomically is written beside it), or with `inPlace`, a file that exists may be written.
    static func writableFile(_ path: String, option: String, inPlace: Bool = false) throws {
        guard !path.isEmpty else { throw ValidationError("\(option) must name a file") }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard !isFolder.boolValue else { throw ValidationError("\(option) \(path) is a folder") }
            if inPlace {
                guard access(path, W_OK) == 0 else { throw ValidationError("\(option) \(path) is not writable") }
                return
            }
        }
        let parent = (path as NSString).deletingLastPathComponent
        let folder = parent.isEmpty ? "." : parent
        do {
            try writableFolder(folder, option: option)
        } catch {
            throw ValidationError("\(option) \(path) cannot be written: its folder \(folder) "
                                  + (FileManager.default.fileExists(atPath: folder) ? "is not a writable folder" : "does not exist"))
        }
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
