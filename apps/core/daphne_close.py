"""
Give the browser time to answer daphne's close frame, so it sees the application's close code.

When the server closes a socket (4401, 4009, 4429...), autobahn, daphne's WebSocket layer, sends
the close frame and waits `closeHandshakeTimeout` (1 s, daphne does not change it) for the
client's reply before it aborts the TCP connection. But the wait is scheduled on txaio's batched
timer, whose `call_later` truncates the deadline to a whole second of the reactor's clock
(`int(now + delay) * 1000`, txaio 25.x/26.x): "1 s" really means "until the next whole second",
anywhere between 0 and 1 s, 0.5 s on average. A browser that answers later than that (a busy
machine, a renderer still busy with the page) gets a TCP reset instead, and Chromium, failing to
write its reply, reports 1006 instead of the code it was sent. `tools/close_race.py` reproduces
it, and docs/upstream/autobahn-close-timeout.md is the upstream report.

`lengthen_close_handshake()` raises the timeout to CLOSE_HANDSHAKE_SECONDS for the daphne
running this process: after the truncation, at least CLOSE_HANDSHAKE_SECONDS - 1 of grace. A
client that never answers holds its connection that long at most. Nothing changes elsewhere
(uvicorn, tests without daphne).
"""

import sys

CLOSE_HANDSHAKE_SECONDS = 5


def lengthen_close_handshake() -> bool:
    """Set the timeout on daphne's WebSocket factory, if daphne serves this process."""
    module = sys.modules.get("daphne.ws_protocol")
    if module is None:  # not running under daphne: nothing to adjust (and nothing to import)
        return False
    factory = module.WebSocketFactory
    if getattr(factory, "close_handshake_lengthened", False):
        return True
    reset_options = factory.resetProtocolOptions

    def reset_with_longer_close(self: object) -> None:
        reset_options(self)
        self.closeHandshakeTimeout = CLOSE_HANDSHAKE_SECONDS

    factory.resetProtocolOptions = reset_with_longer_close
    factory.close_handshake_lengthened = True
    return True
