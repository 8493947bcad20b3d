"""``driftline keys generate``: a new Ed25519 key pair for signing artifacts and events.

The private key goes to the signers only (the registry, the learner, the trainer), the
public key to every verifier (serving, the evaluator, SDK users)::

    eval "$(driftline keys generate --id prod-2 --env)"
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from services.common import keys


def register(sub: Any) -> None:
    """Add ``keys`` to the ``driftline`` command line."""
    parser = sub.add_parser("keys", help="generate the Ed25519 key pair that signs models")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    gen = actions.add_parser("generate", help="print a new key pair")
    gen.add_argument("--id", default="compose-1", help="the key id (default: compose-1)")
    gen.add_argument(
        "--env", action="store_true", help="print export lines for a shell (eval them)"
    )
    gen.set_defaults(func=generate_cmd)


def generate_cmd(args: argparse.Namespace) -> int:
    """Print a new key pair as settings: the private key for signers, the public for all."""
    private, public = keys.generate()
    lines = {
        "DRIFTLINE_SIGNING_KEY": private,
        "DRIFTLINE_SIGNING_KEY_ID": args.id,
        "DRIFTLINE_VERIFY_KEYS": f"{args.id}:{public}",
    }
    for name, value in lines.items():
        prefix = "export " if args.env else ""
        print(f"{prefix}{name}={shlex.quote(value)}")  # noqa: T201 - the command's output
    return 0
