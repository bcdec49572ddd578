import ArgumentParser
import Foundation
import SLAMClient
import SLAMJSON
import SLAMServer

struct Call: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one command or query and print the reply as {\"header\": …, \"body\": …}.",
        discussion: "Exit status 0 when the reply is ok, 1 otherwise, 2 when no reply came within --timeout. A command without --key gets a fresh random key."
    )

    @Argument(help: "The command or query type, e.g. RegisterUser.")
    var type: String
    @Argument(help: "The body, a JSON object.")
    var body = "{}"
    @Option(help: "The idempotency key (commands).")
    var key: String?
    @Option(help: "The server's command endpoint.")
    var server = "tcp://127.0.0.1:5555"
    @Option(help: "How long to wait for the reply, in milliseconds.")
    var timeout = 10_000

    func validate() throws {
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 millisecond (0 would never wait for the reply)") }
        try OptionCheck.endpoint(server, option: "--server", bind: false)
    }

    func run() throws {
        var key = self.key
        if key == nil, Wire.commandTypes.contains(type) { key = UUID().uuidString.lowercased() }
        let client = try SLAMClient(endpoint: server)
        defer { client.close() }
        // The body is sent as given (the server judges it), so a malformed body can be tried too;
        // not invalid UTF-8, which Swift has already replaced in the command line's arguments.
        let id = try client.send(type, body: Array(body.utf8), key: key)
        while true {
            guard let reply = try client.receive(timeoutMs: timeout) else {
                // Whether the command was executed is unknown: resending it under the same key is
                // safe (PROTOCOL.md section 3), so a key the user did not give is shown.
                var message = "slam call: no reply from \(server) within \(timeout) ms (is a SLAM server running there?)"
                if self.key == nil, let key {
                    message += "; it was sent with --key \(key): send it again with that key, so that it runs at most once"
                }
                writeStandardError(message + "\n")
                throw ExitCode(2)
            }
            guard reply.requestId == id else { continue }
            var w = JSONWriter()
            w.beginObject()
            w.key("header"); w.raw(reply.rawHeader)
            w.key("body"); w.raw(reply.rawBody)
            w.endObject()
            print(w.string)
            if !reply.ok { throw ExitCode(1) }
            return
        }
    }
}
