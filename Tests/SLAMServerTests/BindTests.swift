import Foundation
import SLAMServer
import Testing
import ZMQ

@Suite("Binding the server's endpoints")
struct BindTests {
    /// libzmq's "Address already in use" alone did not say which of the two endpoints it was.
    @Test("a TCP port in use: start() names the option and the endpoint", arguments: ["commands", "events"])
    func portInUse(option: String) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slam-bind-" + UUID().uuidString).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let context = try ZMQContext()
        defer { context.terminate() }
        let holder = try context.socket(.router)
        defer { holder.close() }
        try holder.bind("tcp://127.0.0.1:*")
        let taken = try holder.lastEndpoint

        var config = ServerConfig()
        config.dbPath = folder + "/slam.sqlite"
        config.commandsEndpoint = option == "commands" ? taken : "ipc://\(folder)/commands"
        config.eventsEndpoint = option == "events" ? taken : "ipc://\(folder)/events"
        let server = try Server(config: config)
        do {
            _ = try server.start()
            Issue.record("started on \(taken), a port in use")
            server.stop()
        } catch {
            #expect("\(error)" == "--\(option) \(taken): Address already in use", "\(error)")
        }
        server.wait()
    }
}
