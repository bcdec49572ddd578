import SLAMClient
import Testing

/// What `slam call` and `slam subscribe` say of a reply that is not SLAM/1: the frame count was
/// named whatever was wrong ("4 frames" for a wrong protocol frame).
@Suite("SLAMClient.parse names what is wrong with a reply")
struct ClientParseTests {
    /// A reply's frames, each given as text.
    static func frames(_ texts: String...) -> [[UInt8]] { texts.map { Array($0.utf8) } }
    static let header = #"{"requestId":"r","ok":true}"#

    @Test("a SLAM/1 reply parses")
    func wellFormed() throws {
        let reply = try SLAMClient.parse(Self.frames("", "SLAM/1", Self.header, "{}"))
        #expect(reply.requestId == "r" && reply.ok)
    }

    @Test("each fault is named", arguments: [
        (frames("", "SLAM/1", header), "malformed reply: 3 frames, not 4"),
        (frames("x", "SLAM/1", header, "{}"), "malformed reply: its first frame is not empty"),
        (frames("", "SLAM/2", header, "{}"), #"malformed reply: its protocol frame is "SLAM/2", not "SLAM/1""#),
        (frames("", "SLAM/1", "{", "{}"), "malformed reply: its header is not JSON"),
        (frames("", "SLAM/1", "[]", "{}"), "malformed reply: its header is not a JSON object"),
        (frames("", "SLAM/1", header, "nope"), "malformed reply: its body is not JSON"),
    ] as [([[UInt8]], String)])
    func faults(frames: [[UInt8]], message: String) {
        do {
            _ = try SLAMClient.parse(frames)
            Issue.record("parsed: \(frames)")
        } catch {
            #expect("\(error)".hasPrefix(message), "\(error)")
        }
    }
}
