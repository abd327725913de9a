"""The gateway: the WebSocket auction room, the portal RPC, auth and metrics, served by `auction-engine serve`."""
