"""
The ceiling no ASGI server can beat: an echo written directly on the `websockets` library.

Run as `python -m bench.wsecho PORT`; `make bench` starts it, pinned like the ASGI servers.
"""

import sys

import uvloop
from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    """Send every message back as it came."""
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    """Serve on 127.0.0.1 until killed."""
    async with serve(echo, "127.0.0.1", port, compression=None, max_size=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
