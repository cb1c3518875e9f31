"""Install the ``test-servers`` extra (pyproject.toml) into this venv, one
server at a time and from wheels only.

A server (or one of its compiled dependencies) with no wheel for this
Python is not built from source (granian is Rust, and no Rust toolchain is
assumed): it is left out and recorded, with pip's last words, in
``<venv>/servers-missing.json``. tests/test_servers.py skips such a server
naming that probe, and fails for a server that is missing without a record.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = Path(sys.prefix) / "servers-missing.json"


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["test-servers"])


def main() -> int:
    missing: dict[str, str] = {}
    for req in requirements():
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--only-binary", ":all:", req]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
            missing[req] = f"`pip install --only-binary :all: {req}` failed: {tail}"
            print(f"servers: {req}: no wheel for this Python, left out ({tail})")
    RECORD.write_text(json.dumps(missing, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
