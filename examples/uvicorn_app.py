"""A small ASGI app served by uvicorn on uintr_loop.

Routes:

* ``/``        the loop serving the request: ``module.Class`` of the running loop
* ``/thread``  the same, after a round trip through ``asyncio.to_thread``
               (a worker thread, then ``call_soon_threadsafe`` back: the
               loop's wakeup is the user-interrupt path)

Run it with uvicorn's own command line (uvicorn >= 0.36 takes a loop factory
as an import string)::

    uvicorn examples.uvicorn_app:app --loop uintr_loop:new_event_loop

or as a script, which calls ``uvicorn.run(..., loop=...)``::

    python examples/uvicorn_app.py --port 8000        # --port 0: any free port
"""
from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def loop_name() -> str:
    loop = type(asyncio.get_running_loop())
    return f"{loop.__module__}.{loop.__qualname__}"


async def app(scope: Scope, receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    """The ASGI application (lifespan events are acknowledged)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]       # startup / shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/thread":
        worker = await asyncio.to_thread(threading.get_ident)
        assert worker != threading.get_ident()
    elif scope["path"] != "/":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found\n"})
        return
    body = (loop_name() + "\n").encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    # the loop factory as an import string: uvicorn imports and calls it
    uvicorn.run(app, host=args.host, port=args.port, loop="uintr_loop:EventLoop",
                log_level="info")


if __name__ == "__main__":
    main()
