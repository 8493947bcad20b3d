"""``driftline retrain STREAM [--window N]``: ask the trainer for a run now.

Publishes a :class:`~schemas.drift.RetrainRequested` to the ``drift`` topic (key: the
stream); the trainer handles it like a drift event: same window replay, candidates,
gate and alias move. ``--window`` trains on the last N examples instead of the policy's.
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from schemas import Topics
from schemas.drift import RetrainRequested
from services.common.codec import encode, event_key
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings


def register(sub: Any) -> None:
    """Add the ``retrain`` command."""
    parser = sub.add_parser("retrain", help="request a training run for a stream now")
    parser.add_argument("stream", help="the stream (model) to retrain")
    parser.add_argument(
        "--window", type=_positive, default=None, help="train on the last N examples"
    )
    parser.add_argument("--reason", default="manual", help="recorded with the run")
    parser.add_argument("--json", action="store_true", help="print the request as JSON")
    parser.set_defaults(func=retrain_cmd)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the window must be at least 1 example")
    return value


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def retrain_cmd(args: argparse.Namespace) -> int:
    """Publish the retrain request and wait for the broker's acknowledgement."""
    settings = DriftlineSettings.load()
    request = RetrainRequested(
        stream=args.stream, window=args.window, requested_by=_who(), reason=args.reason
    )
    topic = Topics(settings.topic_prefix).name("drift")
    producer = make_producer(settings)
    try:
        producer.send(topic, key=event_key(request), value=encode(request)).get(timeout=30)
    finally:
        producer.close()
    if args.json:
        print(json.dumps(request.model_dump(mode="json")))  # noqa: T201
    else:
        window = f"the last {args.window} examples" if args.window else "the policy's window"
        print(  # noqa: T201
            f"retrain of {args.stream} requested on {topic} ({window}); "
            f"event {request.event_id}; follow it with `driftline runs list --model {args.stream}`"
        )
    return 0
