"""The worker process never loads the web stack (DESIGN: it binds no port, imports no litestar)."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_entry_point_imports_neither_litestar_nor_uvicorn() -> None:
    code = (
        "import sys, interfaces.cli, interfaces.workers.main; "
        "loaded = sorted(m for m in ('litestar', 'uvicorn') if m in sys.modules); "
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_the_api_entry_point_does_load_litestar() -> None:
    code = "import sys, interfaces.http.main; print('litestar' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "True"
