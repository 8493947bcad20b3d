"""A faust worker for the round-trip test: examples.raw -> decode -> examples.valid.

Run as ``python tests/integration/faust_echo.py`` with the DRIFTLINE_* environment
of the test; it uses driftline's faust app factory and codec, like a real service.
"""

from __future__ import annotations

import sys

from schemas import Topics
from services.common.codec import decode, encode, event_key
from services.common.faust_app import make_app, raw_topic
from services.common.settings import DriftlineSettings


def main() -> None:
    settings = DriftlineSettings.load()
    topics = Topics(settings.topic_prefix)
    app = make_app(settings, f"{settings.topic_prefix}echo")
    source = raw_topic(app, topics, "examples.raw")
    sink = raw_topic(app, topics, "examples.valid")
    spec = topics.spec_of(topics.name("examples.raw"))

    @app.agent(source)
    async def echo(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            event = decode(value, spec)
            out = event.model_copy(update={"spec_version": 1})
            await sink.send(key=event_key(out), value=encode(out))

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
