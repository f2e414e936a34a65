"""`?follow=true` on the build-log and driver-log endpoints: the log as server-sent events.

    id: <offset of the next line>        one event per line, `data:` the line
    event: end / data: {"state": ...}    the build or application has finished and every line was sent

A stream lasts at most `max_s` (it holds one API worker thread); the browser's EventSource then
reconnects by itself with `Last-Event-ID`, which wins over `from`, so no line is lost or repeated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from flask import Response, request

# read(offset) -> (lines from offset, the terminal state or None while it still runs)
Reader = Callable[[int], tuple[list[str], str | None]]


def wanted() -> bool:
    return request.args.get("follow", "").lower() in ("1", "true", "yes")


def start_offset(default: int) -> int:
    raw = request.headers.get("Last-Event-ID", "")
    return int(raw) if raw.isdigit() else default


def events(read: Reader, start: int, *, poll_s: float = 0.5, max_s: float = 55.0, keepalive_s: float = 15.0,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    offset, began, last = start, clock(), clock()
    yield "retry: 1000\n\n"
    while clock() - began < max_s:
        lines, state = read(offset)
        for line in lines:
            offset += 1
            yield f"id: {offset}\ndata: {line}\n\n"
        if lines:
            last = clock()
        elif state is not None:
            yield f"event: end\ndata: {json.dumps({'state': state})}\n\n"
            return
        elif clock() - last >= keepalive_s:
            last = clock()
            yield ": keep-alive\n\n"
        if not lines:
            sleep(poll_s)


def response(read: Reader, start: int, *, max_s: float) -> Response:
    return Response(events(read, start_offset(start), max_s=max_s), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
