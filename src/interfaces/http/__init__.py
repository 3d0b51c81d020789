"""The litestar HTTP API."""
