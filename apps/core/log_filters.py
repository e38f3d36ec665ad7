"""
Logging filters for what servers log about clients.

uvicorn's default WebSocket implementation (websockets-sansio, uvicorn 0.35 and later) logs
"Invalid UTF-8 sequence received from client." with the traceback of its own failed decode
whenever a client sends a text frame that is not UTF-8, then closes the socket with 1007 as it
should. Nothing failed on the server: the client broke the protocol, and daphne (autobahn)
answers the same frame with the same 1007 and no log line at all. A traceback in the server log
must mean a bug to look at, so `ClientErrorWithoutTraceback` keeps that line (at INFO) and
drops the traceback. settings.LOGGING attaches it to the `uvicorn.error` logger.

`KnownCancellationWithoutTraceback` does the same for a CPython bug (python/cpython#113538,
fixed in 3.12): asyncio on 3.11 logs "Exception in callback
StreamReaderProtocol.connection_made.<locals>.callback" with a CancelledError traceback for every
connection task a server cancels, which hypercorn does to its sockets when the grace after
SIGTERM runs out. The cancellation is the server's own, on purpose; settings.LOGGING attaches
the filter to the `asyncio` logger, and any other asyncio record keeps its traceback.

It also takes uvicorn's report of its own graceful-shutdown timeout: after SIGTERM or Ctrl-C
uvicorn waits `--timeout-graceful-shutdown` seconds for responses still running (an open event
stream never ends by itself), then cancels them and logs each cancellation as "Exception in
ASGI application" with the CancelledError's traceback. That is the stop working as configured,
not a failure: one INFO line instead (settings.LOGGING attaches the filter to `uvicorn.error`).
"""

import asyncio
import logging

# Messages a server logs with a traceback although the cause is the client's input.
CLIENT_ERRORS = ("Invalid UTF-8 sequence received from client.",)


class ClientErrorWithoutTraceback(logging.Filter):
    """Log a server's report of a client's protocol error as one INFO line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Strip the traceback from the records named in CLIENT_ERRORS; pass everything."""
        if record.getMessage() in CLIENT_ERRORS:
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# What asyncio names the callback in python/cpython#113538's log record.
CPYTHON_113538 = "StreamReaderProtocol.connection_made.<locals>.callback"
# The message uvicorn cancels a request with when its graceful shutdown runs out.
UVICORN_GRACE_OVER = "timeout graceful shutdown exceeded"


class KnownCancellationWithoutTraceback(logging.Filter):
    """Log a server's report of a task it cancelled on purpose as one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Strip the traceback from the known cancellations' records; pass everything."""
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, asyncio.CancelledError):
            return True
        if CPYTHON_113538 in record.getMessage():
            record.msg = "a server cancelled a connection task (python/cpython#113538)"
        elif UVICORN_GRACE_OVER in str(error):
            record.msg = "uvicorn cancelled a response still running when its grace ran out"
        else:
            return True
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True
