"""
Logging filters for what servers log about clients.

uvicorn's default WebSocket implementation (websockets-sansio, uvicorn 0.35 and later) logs
"Invalid UTF-8 sequence received from client." with the traceback of its own failed decode
whenever a client sends a text frame that is not UTF-8, then closes the socket with 1007 as it
should. Nothing failed on the server: the client broke the protocol, and daphne (autobahn)
answers the same frame with the same 1007 and no log line at all. A traceback in the server log
must mean a bug to look at, so `ClientErrorWithoutTraceback` keeps that line (at INFO) and
drops the traceback. settings.LOGGING attaches it to the `uvicorn.error` logger.
"""

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
