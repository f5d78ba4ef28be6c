"""modules/services/updates.nix (issue 14): every agent unit has a start timeout, the agent's
modules (records.py, common.py included) are installed, and the FleetLock token file and the
run timeout reach the agent's configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_core_modules import evaluate, text, usr

from sonix import paths

MODULES = paths.source_root() / "modules/services"
KEY = paths.source_root() / "tests/vm/fixtures/containers/no-channel-key.gpg"


def config(extra: str = "") -> str:
    return f"""{{ ... }}: {{
      imports = [ {MODULES / "updates.nix"} ];
      updates = {{
        enable = true;
        channel = "https://updates.example.com/sonix/";
        trustedKeys = [ {KEY} ];
        {extra}
      }};
    }}"""


def unit(files: dict[str, Any], name: str) -> str:
    return text(files, f"lib/systemd/system/{name}")


def test_every_agent_unit_has_a_start_timeout() -> None:
    files = usr(config())
    assert "TimeoutStartSec=3600s" in unit(files, "sonix-update.service")
    assert "TimeoutStartSec=2min" in unit(files, "sonix-update-assess.service")
    assert "TimeoutStartSec=2min" in unit(files, "sonix-update-steady-state.service")


def test_the_agent_and_its_shared_modules_are_installed() -> None:
    files = usr(config())
    for name in ("chunks", "common", "gpt", "records", "uki", "update", "versions"):
        assert f"lib/sonix/agents/{name}.py" in files, name
    agent = json.loads(text(files, "lib/sonix/update.json"))
    assert agent["timeout"] == 3600
    assert "fleetLock" not in agent


def test_fleet_lock_token_file_and_timeout_reach_the_agent() -> None:
    files = usr(config('''
        strategy = "fleet-lock"; timeout = 7200;
        fleetLock = { url = "http://lock:3333"; tokenFile = "/etc/sonix/fleetlock-token"; };
    '''))
    agent = json.loads(text(files, "lib/sonix/update.json"))
    assert agent["fleetLock"] == {"url": "http://lock:3333", "group": "default",
                                  "tokenFile": "/etc/sonix/fleetlock-token"}
    assert agent["timeout"] == 7200
    assert "TimeoutStartSec=7200s" in unit(files, "sonix-update.service")
    assert evaluate(config(), "updates.fleetLock.tokenFile") is None


def test_secure_boot_gives_the_agent_the_db_certificate_and_sbverify(tmp_path: Path) -> None:
    """With boot.secureBoot the image ships the db certificate (public) and sbsigntool, and
    the agent's configuration names the certificate: every new UKI must verify against it."""
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    for name in ("db.key", "pcr-policy.key", "PK.auth", "KEK.auth", "db.auth"):
        (tmp_path / name).write_text("stand-in\n")
    (tmp_path / "db.crt").write_text(cert)
    (tmp_path / "pcr-policy.pub.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    secure = f'boot.secureBoot = {{ enable = true; keyDirectory = "{tmp_path}"; }};'
    module = config().rstrip().removesuffix("}") + secure + "}"
    files = usr(module)
    agent = json.loads(text(files, "lib/sonix/update.json"))
    assert agent["secureBoot"] == {"certificate": "/usr/lib/sonix/secure-boot/db.crt"}
    assert text(files, "lib/sonix/secure-boot/db.crt") == cert
    assert any(p.endswith("-sbsigntool") for p in evaluate(module, "environment.packages"))
    # Unsigned images: no certificate, no check, no sbsigntool.
    files = usr(config())
    assert "secureBoot" not in json.loads(text(files, "lib/sonix/update.json"))
    assert "lib/sonix/secure-boot/db.crt" not in files
    assert not any(p.endswith("-sbsigntool") for p in evaluate(config(), "environment.packages"))
