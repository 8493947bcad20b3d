"""``driftline keys generate``: a pair whose halves work as the settings they are printed as."""

from __future__ import annotations

import shlex

import pytest

from services.cli.main import main
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, artifact_subject


def test_generated_pair_signs_and_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--id", "prod-2", "--env"]) == 0
    env = {}
    for line in capsys.readouterr().out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    assert env["DRIFTLINE_SIGNING_KEY_ID"] == "prod-2"
    signer = Keyring.from_settings(DriftlineSettings.load(env=env))
    verifier_env = {"DRIFTLINE_VERIFY_KEYS": env["DRIFTLINE_VERIFY_KEYS"]}
    verifier = Keyring.from_settings(DriftlineSettings.load(env=verifier_env))
    assert signer.can_sign and not verifier.can_sign
    sig = signer.sign(b"bytes", artifact_subject("sea", 1))
    verifier.verify(b"bytes", sig, artifact_subject("sea", 1))
