"""Browser tests: real Chromium, real daphne, the real WebSocket API."""
