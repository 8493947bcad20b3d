"""The demo's credentials: which key settings each service gets, and the service token.

The registry, the learner and the trainer sign (they get the Ed25519 private key); the
evaluator keeps signed state (it gets the checkpoint key); every service gets the public
keys. A key pair and a checkpoint key are generated into the data dir once when none is
configured, and a service token is made per run.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from rich.console import Console

from services.common import keys
from services.common.settings import DriftlineSettings

SIGNERS = frozenset({"registry", "learner", "trainer"})  # hold the private key
STATE_KEEPERS = frozenset({"evaluator"})  # checkpoint without a private key
PRIVATE_VARS = ("DRIFTLINE_SIGNING_KEY", "DRIFTLINE_SIGNING_KEY_ID")


@dataclass(frozen=True)
class KeyEnv:
    """The key settings of the demo's services: ``signer`` for the registry, the learner
    and the trainer only; ``state`` (the checkpoint key) for the evaluator only;
    ``verifier`` (public keys) for every service."""

    signer: dict[str, str]
    verifier: dict[str, str]
    state: dict[str, str]

    def of(self, service: str) -> dict[str, str]:
        """The key settings ``service`` gets."""
        env = dict(self.verifier)
        if service in SIGNERS:
            env.update(self.signer)
        if service in STATE_KEEPERS:
            env.update(self.state)
        return env


def signing_env(settings: DriftlineSettings, console: Console) -> KeyEnv:
    """The configured signing key, or a key pair kept in the data dir (generated once):
    the private key goes to signers only, its public key to every service."""
    if settings.signing_key is not None and settings.signing_key_id is not None:
        private = settings.signing_key.get_secret_value()
        key_id = settings.signing_key_id
    else:
        key_id = "demo"
        path = settings.data_path / "demo-ed25519.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(keys.generate()[0], encoding="utf-8")
            path.chmod(0o600)
            console.print(f"[bold]signing[/]: generated an Ed25519 key pair into {path}")
        else:
            console.print(f"[bold]signing[/]: using the demo key pair in {path}")
        private = path.read_text(encoding="utf-8").strip()
    public = keys.public_text(keys.load_private_key(private).public_key())
    listed = settings.verify_keys.get_secret_value() if settings.verify_keys else ""
    checkpoint = settings.checkpoint_key.get_secret_value() if settings.checkpoint_key else None
    if checkpoint is None:
        cp_path = settings.data_path / "demo-checkpoint.key"
        if not cp_path.exists():
            cp_path.write_text(secrets.token_hex(32), encoding="utf-8")
            cp_path.chmod(0o600)
        checkpoint = cp_path.read_text(encoding="utf-8").strip()
    console.print(
        f"[bold]signing[/]: key id {key_id!r}: the private key to "
        f"{', '.join(sorted(SIGNERS))}; serving and the evaluator get its public key only"
    )
    return KeyEnv(
        signer={"DRIFTLINE_SIGNING_KEY": private, "DRIFTLINE_SIGNING_KEY_ID": key_id},
        verifier={
            "DRIFTLINE_VERIFY_KEYS": ",".join(k for k in (f"{key_id}:{public}", listed) if k),
        },
        state={"DRIFTLINE_CHECKPOINT_KEY": checkpoint},
    )


def service_token_env(settings: DriftlineSettings, console: Console) -> dict[str, str]:
    """The token the services write to the registry with: the configured one, or one
    made for this run (handed to the registry and the services like the signing key)."""
    if settings.service_token is not None:
        return {}
    console.print("[bold]registry[/]: generated a service token for this run's services")
    return {"DRIFTLINE_SERVICE_TOKEN": secrets.token_urlsafe(32)}
