"""Print a spaas tenant's lifecycle events (docs/integrations.md) as JSON lines.

Needs only kombu. The integration's event queue is bound by the platform to its tenant's events;
the integration may read it but not declare or bind anything (hence `no_declare` and no ack
emulation, which would write shared keys):

    python consumer.py --redis-url "$REDIS_URL" --queue spaas.lifecycle.acme.pipeline \\
        [--until-app 0193...] [--until-state FINISHED] [--timeout 300]

With --until-app it exits once that application reaches a final state: 0 if it is
--until-state (FINISHED by default), 1 if another one, 2 on timeout.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

from kombu import Connection, Queue

FINAL = {"FINISHED", "FAILED", "KILLED"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", required=True, help="the integration's redis_url (with its user and password)")
    p.add_argument("--queue", required=True, help="the integration's event_queue")
    p.add_argument("--until-app", default=None)
    p.add_argument("--until-state", default="FINISHED")
    p.add_argument("--timeout", type=float, default=0.0, help="seconds; 0 = forever")
    args = p.parse_args()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    result: list[int] = []

    def on_message(body: object, message: object) -> None:
        event = json.loads(body) if isinstance(body, (str, bytes)) else body
        print(json.dumps(event), flush=True)
        if (args.until_app and isinstance(event, dict) and event.get("type") == "app.state"
                and event.get("id") == args.until_app and event.get("state") in FINAL):
            result.append(0 if event["state"] == args.until_state else 1)

    with Connection(args.redis_url, transport_options={"ack_emulation": False}) as conn:
        queue = Queue(args.queue, no_declare=True)
        with conn.Consumer([queue], callbacks=[on_message], accept=["json"], no_ack=True, auto_declare=False):
            while not result:
                if deadline is not None and time.monotonic() > deadline:
                    return 2
                try:
                    conn.drain_events(timeout=1)
                except (socket.timeout, TimeoutError):
                    pass
    return result[0]


if __name__ == "__main__":
    sys.exit(main())
