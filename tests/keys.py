"""Deterministic Ed25519 keys for tests: one private key per label, and its public key.

>>> private_key_for("a") == private_key_for("a") != private_key_for("b")
True
>>> len(public_key_for("a"))
44
"""

from __future__ import annotations

import base64
import hashlib

from services.common import keys


def private_key_for(label: str) -> str:
    """A private key (``DRIFTLINE_SIGNING_KEY`` text) derived from ``label``."""
    return base64.b64encode(
        hashlib.sha256(f"driftline-test-key:{label}".encode()).digest()
    ).decode()


def public_key_for(label: str) -> str:
    """The public key (``DRIFTLINE_VERIFY_KEYS`` text) of :func:`private_key_for`."""
    return keys.public_text(keys.load_private_key(private_key_for(label)).public_key())
