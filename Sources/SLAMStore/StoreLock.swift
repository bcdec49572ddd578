import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a database, held by `slam serve` for its whole life and by the offline
/// tools (`slam projections rebuild`), so an offline tool never rewrites read models under a
/// running server and two servers never share one store.
///
/// It is an `flock(2)` on the file `<database>.lock` beside the database (created if missing,
/// never deleted: deleting a lock file races with the next locker). `flock` locks belong to the
/// open file description, so two lockers in one process exclude each other too, and the kernel
/// drops the lock when the holder exits, even by `kill -9`: a stale lock file is harmless.
/// The holder writes its pid and purpose into the file, only to name itself in the error of
/// whoever is refused.
///
/// The holder also takes an `flock` on the database file itself (created empty if missing: an
/// empty file is a new store): a hard link or a bind mount names the same file by another path,
/// whose lock file is another, and an audit ran two servers on one store that way, each
/// acknowledging commands the other's WAL then lost. The file's own lock is one per file however
/// it is named (and stays when someone deletes the lock file). SQLite locks with `fcntl`, which
/// on Linux is independent of `flock`; but closing any descriptor of the file drops the process's
/// `fcntl` locks on it, SQLite's included, so this descriptor is kept open until `release()`,
/// which the holders call after closing their connections.
public final class StoreLock: @unchecked Sendable {
    /// The lock file.
    public let path: String
    private var fd: Int32
    /// The database file's descriptor, holding its `flock` (-1 for an in-memory database).
    private var databaseFD: Int32
    private let mutex = NSLock()

    /// `<database>.lock`, beside the file the path names once symbolic links are resolved (in
    /// the path, or the database itself), so that two paths to one database share one lock.
    public static func lockPath(forDatabase database: String) -> String { canonical(database) + ".lock" }

    /// `database` with its symbolic links resolved: the file's real path when it exists, else its
    /// folder's real path and its name (a database about to be created), else as given.
    static func canonical(_ database: String) -> String {
        func real(_ path: String) -> String? {
            guard let resolved = realpath(path, nil) else { return nil }
            defer { free(resolved) }
            return String(cString: resolved)
        }
        if let file = real(database) { return file }
        let name = (database as NSString).lastPathComponent
        let folder = (database as NSString).deletingLastPathComponent
        if let dir = real(folder.isEmpty ? "." : folder) { return (dir as NSString).appendingPathComponent(name) }
        return database
    }

    /// Takes the lock of `database` without waiting, or throws `StoreError(.locked)` naming the
    /// lock file and the holder. `holder` says who takes it ("slam serve", "slam projections
    /// rebuild"). An in-memory database (`:memory:` or "") has nothing to lock: the lock is a
    /// no-op then.
    public static func acquire(database: String, holder: String) throws -> StoreLock {
        if database.isEmpty || database == ":memory:" || database.hasPrefix("file::memory:") {
            return StoreLock(path: "", fd: -1)
        }
        let folder = (database as NSString).deletingLastPathComponent
        if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder) {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        let path = lockPath(forDatabase: database)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError(.locked, "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            if err == EINTR { continue }
            let who = Self.describeHolder(fd: fd)
            close(fd)
            if err == EWOULDBLOCK { throw inUse(database, lockFile: path, by: who) }
            throw StoreError(.locked, "cannot lock \(path): \(String(cString: strerror(err)))")
        }
        // Name ourselves for whoever is refused next.
        let text = "\(holder) (pid \(getpid()))\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        // Refused after all: the lock file's lock given back (our name out of it), and the database
        // file's descriptor closed, when open.
        func giveUp(closing databaseFD: Int32 = -1) {
            if databaseFD >= 0 { close(databaseFD) }
            ftruncate(fd, 0)
            close(fd)
        }
        // The database file's own lock (see the type's comment).
        let databaseFD = open(database, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard databaseFD >= 0 else {
            let err = errno
            giveUp()
            throw StoreError(.locked, "cannot open \(database) to lock it: \(String(cString: strerror(err)))")
        }
        while flock(databaseFD, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            if err == EINTR { continue }
            giveUp(closing: databaseFD)
            if err == EWOULDBLOCK {
                throw StoreError(.locked, "the database \(database) is in use through another path to the same file (a "
                                 + "hard link or a bind mount): a server or an offline tool has it open; stop it first")
            }
            throw StoreError(.locked, "cannot lock \(database): \(String(cString: strerror(err)))")
        }
        // A file with several names (hard links): each name has a WAL and a -shm of its own, so
        // what is committed through one is lost to the other, one server after another too
        // (SQLite warns of it: "multiple links to file"). Refused until the other names go.
        var info = stat()
        if fstat(databaseFD, &info) == 0, info.st_nlink > 1 {
            giveUp(closing: databaseFD)
            throw StoreError(.badDatabase, "the database file \(database) has \(info.st_nlink) names (hard links): each name "
                             + "would have a WAL of its own, and commits made through one would be lost to the other; "
                             + "remove the other names (find / -samefile \(database))")
        }
        return StoreLock(path: path, fd: fd, databaseFD: databaseFD)
    }

    private static func inUse(_ database: String, lockFile: String, by who: String?) -> StoreError {
        StoreError(.locked, "the database \(database) is in use: its lock file \(lockFile) is held by "
                   + "\(who ?? "another process") (a server is running on it, or an offline tool); stop it first")
    }

    /// Throws what `acquire` would when some process holds the lock of `database` right now; a
    /// probe that creates no file, for a caller with something to do before it takes the lock
    /// that must not disturb the holder (`slam serve` binds its endpoints first).
    public static func refuseIfHeld(database: String) throws {
        guard let who = holder(database: database) else { return }
        throw inUse(database, lockFile: lockPath(forDatabase: database), by: who)
    }

    /// Whether some process holds the lock of `database` right now (a probe: takes and drops it).
    public static func isHeld(database: String) -> Bool { holder(database: database) != nil }

    /// Who holds the lock of `database` right now, as it named itself ("slam serve (pid 42)";
    /// "another process" when it did not), or nil when no process holds it. A probe that takes
    /// and drops a shared lock, and creates no file.
    public static func holder(database: String) -> String? {
        let path = lockPath(forDatabase: database)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        guard errno == EWOULDBLOCK else { return nil }
        return describeHolder(fd: fd) ?? "another process"
    }

    private init(path: String, fd: Int32, databaseFD: Int32 = -1) {
        self.path = path
        self.fd = fd
        self.databaseFD = databaseFD
    }

    /// Whether this object still holds its lock.
    public var isHeld: Bool { mutex.lock(); defer { mutex.unlock() }; return fd >= 0 }

    /// Releases the lock (idempotent). The file stays.
    public func release() {
        mutex.lock()
        defer { mutex.unlock() }
        guard fd >= 0 else { return }
        if databaseFD >= 0 {
            close(databaseFD)  // drops its flock
            databaseFD = -1
        }
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }

    private static func describeHolder(fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
