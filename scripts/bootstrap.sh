#!/usr/bin/env bash
# Everything a fresh clone needs before anything runs: system packages and jars
# (scripts/infra/install.sh), uv, and the locked Python environment in .venv.
# Idempotent and quick when nothing is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UV_VERSION=0.13.8

bash scripts/infra/install.sh
bash scripts/infra/install_ops_tools.sh

if ! command -v uv >/dev/null 2>&1 || [[ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]]; then
    echo "[bootstrap] installing uv $UV_VERSION" >&2
    python3.11 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# --frozen: exactly the versions in uv.lock, never a re-resolution.
uv sync --frozen --python python3.11 --quiet
