"""The compose stack test builds images and runs containers for minutes: it runs only from
``make compose-test`` (which sets ``DRIFTLINE_COMPOSE_TEST=1``), never in ``make test``."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("DRIFTLINE_COMPOSE_TEST") == "1" else ["test_*.py"]
