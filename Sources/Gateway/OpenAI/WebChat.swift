import Hummingbird
import LumenAPI
import WireFormats

/// The dashboard's web chat: a signed-in person's chat completion through the same
/// admission, routing, metering and ledger as `/v1/chat/completions`, charged to the person's
/// own pool without a key and recorded with origin `web`.
public struct WebChat: Sendable {
    let pipeline: InferencePipeline

    /// Answers `body` (an OpenAI chat-completions request) for the person `userID` of
    /// `organizationID`, as the API would: JSON, or a stream of server-sent events. Once the
    /// answer has ended, `answered` gets its text and the request's id (its usage line's),
    /// read from the events the pipeline parsed as they passed.
    public func complete(
        organizationID: String, userID: String, body: [String: JSONValue], request: Request,
        answered: @escaping @Sendable (_ text: String, _ requestID: String) async -> Void
    ) async throws -> Response {
        try await pipeline.counted(.chatCompletions, request) { started, label in
            try await pipeline.serveWeb(
                organizationID: organizationID, userID: userID, body: body, started: started, label: &label, answered: answered)
        }
    }
}
