import Foundation
import Storage
import LumenAPI

/// What each key has used — the sums of its settled lines and the latest one's time — in
/// `key_totals`, added to in the transaction that settles the lines (`Book.flush`), so that it
/// equals Σ of the key's lines after any crash.
enum KeyTotals {
    struct Key: Hashable {
        var organizationID: String
        var keyID: String
    }

    /// A batch's additions to one key.
    struct Delta {
        var totals = Rollups.Totals()
        var lastUsedAt: Int64 = 0

        mutating func add(_ more: Rollups.Totals, at createdAt: Int64) {
            totals.add(more)
            lastUsedAt = max(lastUsedAt, createdAt)
        }
    }

    /// The totals of `keyIDs` in `organizationID`, in the order asked; zeros for a key without
    /// lines. One statement for the lot (the ids as one JSON array), not a query per key nor a
    /// statement of a thousand placeholders prepared each time.
    static func fetch(_ db: any SQLSession, organizationID: String, keyIDs: [String]) async throws -> [Lumen_Ledger_V1_KeyTotals] {
        var found: [String: Lumen_Ledger_V1_KeyTotals] = [:]
        found.reserveCapacity(keyIDs.count)
        guard !keyIDs.isEmpty else { return [] }
        // Ids as Lumen makes them (letters, digits, `_`, `-`) need no escaping.
        let plain = keyIDs.allSatisfy { id in
            id.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x61...0x7A).contains(byte | 0x20) || byte == 0x5F || byte == 0x2D
            }
        }
        let ids = plain ? "[\"" + keyIDs.joined(separator: "\",\"") + "\"]" : String(decoding: try JSONEncoder().encode(keyIDs), as: UTF8.self)
        for row in try await db.rows(
            """
            SELECT key_id, \(Totals.columns)
            FROM key_totals WHERE organization_id = ? AND key_id IN (\(db.dialect.jsonStrings))
            """, [.text(organizationID), .text(ids)])
        {
            var totals = Lumen_Ledger_V1_KeyTotals()
            totals.keyID = try row[0]
            try totals.read(row, from: 1)
            found[totals.keyID] = totals
        }
        return keyIDs.map { keyID in found[keyID] ?? .with { $0.keyID = keyID } }
    }
}
