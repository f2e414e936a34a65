"""Submit a spaas application through the queue contract (docs/integrations.md) and print the reply.

Needs only kombu (and celery with --celery). The integration's credentials and queue names are
what `POST /api/v1/tenants/{t}/integrations` returned:

    python producer.py --redis-url "$REDIS_URL" --request-queue spaas.integrations.requests \\
        --reply-queue spaas.replies.acme.pipeline.1 --token "$SPAAS_TOKEN" \\
        --tenant acme --sig s1 --file files/job.py --key nightly-2026-11-29 [--celery]

Exit status 0 if the platform accepted the request, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from kombu import Connection, Exchange, Queue


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", required=True, help="the integration's redis_url (with its user and password)")
    p.add_argument("--request-queue", default="spaas.integrations.requests")
    p.add_argument("--reply-queue", required=True, help="<reply_queue_prefix><anything>")
    p.add_argument("--token", required=True, help="a spaas API token of the user the request acts as")
    p.add_argument("--tenant", required=True)
    p.add_argument("--sig", required=True)
    p.add_argument("--file", required=True, help="the application's file in the SIG's storage (files/...)")
    p.add_argument("--arg", action="append", default=[], help="an argument of the application (repeatable)")
    p.add_argument("--key", default=None, help="idempotency key: the same key never submits twice")
    p.add_argument("--celery", action="store_true", help="send a Celery task instead of a plain message")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()

    request = {"version": 1, "token": args.token, "tenant": args.tenant, "sig": args.sig,
               "body": {"file": args.file, "args": args.arg}}
    if args.key:
        request["idempotency_key"] = args.key
    # The anonymous exchange delivers straight to the queue: the integration may not declare anything.
    target = Queue(args.request_queue, exchange=Exchange(""), routing_key=args.request_queue, no_declare=True)
    correlation_id = str(uuid.uuid4())
    if args.celery:
        from celery import Celery

        app = Celery("producer", broker=args.redis_url)
        app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
        result = app.send_task("spaas.app.submit", kwargs=request, queue=target, reply_to=args.reply_queue,
                               task_id=correlation_id)
        correlation_id = result.id
    else:
        with Connection(args.redis_url) as conn:
            conn.Producer(exchange=Exchange("")).publish(
                json.dumps({**request, "type": "app.submit"}), routing_key=args.request_queue, declare=[],
                reply_to=args.reply_queue, correlation_id=correlation_id, content_type="application/json")

    # Replies: a plain JSON message on the reply queue, with the request's correlation id.
    replies = Queue(args.reply_queue, exchange=Exchange(""), routing_key=args.reply_queue, no_declare=True)
    with Connection(args.redis_url, transport_options={"ack_emulation": False}) as conn:
        with conn.SimpleQueue(replies, no_ack=True) as queue:
            while True:
                message = queue.get(block=True, timeout=args.timeout)
                if message.properties.get("correlation_id") == correlation_id:
                    reply = json.loads(message.body)
                    print(json.dumps(reply))
                    return 0 if reply["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
