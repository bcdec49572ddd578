import Foundation

/// The files this folder ships at run time: the SQL migrations of the event store (`sql/`) and the
/// JSON Schemas of every wire message (`json/`).
public enum SLAMSchemas {
    /// The text of `sql/NAME`, e.g. `0001_event_store.sql`.
    public static func sql(_ name: String) -> String {
        guard let url = Bundle.module.url(forResource: "sql/" + name, withExtension: nil),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            fatalError("SLAMSchemas: resource sql/\(name) is missing from the bundle")
        }
        return text
    }

    /// The folder holding the JSON Schemas.
    public static var jsonDirectory: URL? { Bundle.module.url(forResource: "json", withExtension: nil) }
}
