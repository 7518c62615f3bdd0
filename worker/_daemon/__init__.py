"""The JSON-RPC daemon (SPEC 7): transport, framing, wire, dispatch, method
handlers, dataset cache, progress and the server's lifecycle."""
