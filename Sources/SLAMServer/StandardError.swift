import Foundation

/// One line on stderr, through `write(2)`, whatever becomes of it: `FileHandle.write` traps when
/// the write fails, so a server whose stderr was on a full disk (or `/dev/full`) died at its
/// first logged error, a failed batch's, leaving that batch's clients without a reply (audit).
/// A line that cannot be written is lost, and the server goes on.
func logError(_ message: String) { writeStandardError("slam: " + message + "\n") }

/// Writes `text` to stderr through `write(2)`, dropping what cannot be written (see `logError`).
/// The CLI's messages and progress lines go through it too: with `FileHandle.write`, `slam verify`,
/// `projections rebuild`, `call`, `bench`, `subscribe` and `debug-generate` trapped (exit 132, SIGILL)
/// instead of exiting with their documented status when stderr was full.
public func writeStandardError(_ text: String) {
    let line = Array(text.utf8)
    line.withUnsafeBytes { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
