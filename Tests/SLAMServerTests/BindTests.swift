import Foundation
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

@Suite("Binding the server's endpoints")
struct BindTests {
    /// libzmq's "Address already in use" alone did not say which of the two endpoints it was.
    @Test("a TCP port in use: start() names the option and the endpoint", arguments: ["commands", "events"])
    func portInUse(option: String) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slam-bind-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let context = try ZMQContext()
        defer { context.terminate() }
        let holder = try context.socket(.router)
        defer { holder.close() }
        try holder.bind("tcp://127.0.0.1:*")
        let taken = try holder.lastEndpoint

        var config = ServerConfig.forTests(in: folder)
        if option == "commands" { config.commandsEndpoint = taken } else { config.eventsEndpoint = taken }
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
