"""The logging filters that turn a server's report of something outside our code into a line."""

import asyncio
import logging
import sys

from apps.core.log_filters import (
    CPYTHON_113538,
    ClientErrorWithoutTraceback,
    KnownCancellationWithoutTraceback,
)


def record(name: str, message: str, error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, (), exc_info)


def test_uvicorns_invalid_utf8_report_loses_its_traceback() -> None:
    report = record(
        "uvicorn.error",
        "Invalid UTF-8 sequence received from client.",
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    )
    assert ClientErrorWithoutTraceback().filter(report)
    assert report.exc_info is None and report.levelname == "INFO"
    other = record("uvicorn.error", "Exception in ASGI application", ValueError("bug"))
    assert ClientErrorWithoutTraceback().filter(other)
    assert other.exc_info is not None and other.levelname == "ERROR"


def test_cpythons_cancelled_connection_report_becomes_one_line() -> None:
    message = f"Exception in callback {CPYTHON_113538}(<Task>)\nhandle: <Handle {CPYTHON_113538}>"
    report = record("asyncio", message, asyncio.CancelledError())
    assert KnownCancellationWithoutTraceback().filter(report)
    assert report.exc_info is None and report.levelname == "INFO"
    assert "python/cpython#113538" in report.getMessage()
    # The same callback failing with a real error, or any other asyncio error, keeps it all.
    for other in (
        record("asyncio", message, ValueError("bug")),
        record("asyncio", "Task exception was never retrieved", asyncio.CancelledError()),
    ):
        assert KnownCancellationWithoutTraceback().filter(other)
        assert other.exc_info is not None and other.levelname == "ERROR"


def test_uvicorns_report_of_a_response_cancelled_when_its_grace_ran_out_becomes_one_line() -> None:
    cancelled = asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")
    report = record("uvicorn.error", "Exception in ASGI application\n", cancelled)
    assert KnownCancellationWithoutTraceback().filter(report)
    assert report.exc_info is None and report.levelname == "INFO"
    assert "grace ran out" in report.getMessage()
    # Any other cancellation, or a real error, in the application keeps its traceback.
    for other in (
        record("uvicorn.error", "Exception in ASGI application\n", asyncio.CancelledError()),
        record("uvicorn.error", "Exception in ASGI application\n", ValueError("bug")),
    ):
        assert KnownCancellationWithoutTraceback().filter(other)
        assert other.exc_info is not None and other.levelname == "ERROR"
