"""
Make daphne's shutdown tell every application, and wait for all of them.

On SIGTERM or Ctrl-C, daphne runs `Server.kill_all_applications` as a "before shutdown" trigger
of Twisted's reactor: it cancels every application instance and returns a Deferred meant to
hold the shutdown until they have finished. That is how a consumer learns of the stop in time
to close its socket with a code of its own (the lobby's 4503, so the page reconnects at once)
and to clean up (the lobby's presence entry, a job's lease). Two faults in it (daphne 4.2.3)
made the "drop-first" path of the SIGTERM browser test (e2e/test_lobby_shutdown.py), where the
browser saw 1006 and the user stayed online until the presence entry expired:

- It reads `details["application_instance"]` for every entry of `Server.connections`, but not
  every entry has one: the HTTP request that a WebSocket handshake upgrades stays there, without
  an application, until the next `application_checker` pass (once a second) removes it, and so
  does a socket whose application has ended while its connection is still closing. A stop
  within a second of any handshake raised KeyError, which Twisted logs (nowhere, at daphne's
  default verbosity) and then went on without cancelling or waiting: every socket was dropped
  and no consumer was told.
- It waits with `asyncio.gather(*instances)`, which is done as soon as the first instance ends
  cancelled, and every instance ends so. The shutdown went on (dropping every connection, then
  stopping the event loop) as soon as the quickest consumer had finished: a slower one, such as
  the lobby leaving Redis, was cut off halfway, its close frame often unsent.

`wait_for_every_application()` replaces the method, under daphne only, with one that cancels
every instance there is and waits until all have finished, for at most daphne's application
close timeout (`--application-close-timeout`, 10 s in tools/servers.py SERVER_FLAGS).
docs/upstream/daphne-sigterm-drop-first.md is the upstream report; `python -m tools.drop_first`
reproduces both faults.
"""

import asyncio
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)


def _cancel_and_wait(server: Any) -> Any:
    """Cancel every running application instance; a Deferred that fires once all have ended."""
    from twisted.internet import defer

    running = [
        instance
        for details in server.connections.values()
        if (instance := details.get("application_instance")) is not None and not instance.done()
    ]
    for instance in running:
        instance.cancel()
    logger.info("shutting down: waiting for %d cancelled application instances", len(running))
    if not running:
        return defer.succeed(None)
    # asyncio.wait, not gather: gather is done at the first instance that ends cancelled.
    waiting = asyncio.ensure_future(asyncio.wait(running, timeout=server.application_close_timeout))
    return defer.Deferred.fromFuture(waiting)


def wait_for_every_application() -> bool:
    """Replace `kill_all_applications` of the daphne running this process, if daphne does."""
    module = sys.modules.get("daphne.server")
    if module is None:  # not running under daphne: nothing to adjust (and nothing to import)
        return False
    module.Server.kill_all_applications = _cancel_and_wait
    return True
