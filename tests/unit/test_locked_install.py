"""Every way of installing Conveyor installs exactly uv.lock, and the lock covers it all."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lock() -> dict[str, dict[str, object]]:
    packages = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    return {package["name"]: package for package in packages}


def _requirement_names() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = [re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0] for requirement in requirements]
    return [name.lower().replace("_", "-") for name in names]


def test_every_requirement_and_dev_tool_is_pinned_with_hashes_in_the_lock() -> None:
    locked = _lock()
    for name in _requirement_names():
        assert name in locked, f"{name} is not in uv.lock"
        package = locked[name]
        assert re.fullmatch(r"\d+(\.\d+)*(\w+\d*)?", str(package["version"]))
        artifacts = [*package.get("wheels", []), package.get("sdist")]  # type: ignore[list-item]
        hashes = [a["hash"] for a in artifacts if isinstance(a, dict) and "hash" in a]
        assert hashes, f"{name} has no hashed artifact in uv.lock"


def test_the_lock_matches_pyproject() -> None:
    """`uv lock --check` fails when pyproject.toml changed and the lock was not redone."""
    uv = ROOT / ".uv" / "bin" / "uv"
    assert uv.exists(), "run the tests through make: it installs uv in .uv/"
    command = [str(uv), "lock", "--check"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_make_and_the_image_install_the_lock_and_nothing_else() -> None:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    assert "$(UV) sync --locked --extra dev" in makefile
    for text in (makefile, dockerfile):  # pip installs uv alone, by hash
        for line in text.splitlines():
            if "pip install" in line:
                assert re.search(r"--require-hashes\s+-r requirements-uv.txt", line), line
    assert dockerfile.count("uv sync --locked") == 2
    pinned = (ROOT / "requirements-uv.txt").read_text()
    assert re.search(r"^uv==[\d.]+ \\$", pinned, re.MULTILINE)
    assert "--hash=sha256:" in pinned
    assert "make test" in (ROOT / ".ci" / "run").read_text()
