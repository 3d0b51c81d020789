"""docker-compose.yml as Compose itself resolves it (`docker-compose config` needs no engine)."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
REDIS_PORT = 6379


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is missing: these tests resolve docker-compose.yml with it. "
            "Install it with `apt-get install docker-compose` (`.ci/run` does)."
        )
    return found


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    """The caller's variables over a clean slate: Compose obeys every COMPOSE_* variable and
    interpolates any variable the file names, so the shell's own must not leak in."""
    named = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("COMPOSE_") and name not in named
    }
    return {**kept, **env}


def run(
    *args: str, profiles: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    flags = [part for profile in profiles for part in ("--profile", profile)]
    argv = [docker_compose(), "--file", str(COMPOSE), *flags, *args]
    return subprocess.run(
        argv, cwd=ROOT, env=_environment(env or {}), capture_output=True, text=True, check=False
    )


def resolved(profiles: Sequence[str] = (), env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The file with anchors, merges and variables applied, as Compose would run it."""
    done = run("config", profiles=profiles, env=env)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def running(config: Mapping[str, Any], profiles: Sequence[str]) -> dict[str, Any]:
    """The services `up` starts: those of no profile and those of an enabled one (Compose 1
    prints every service, whatever the profiles)."""
    return {
        name: service
        for name, service in config["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def redis_addresses(config: Mapping[str, Any], profiles: Sequence[str]) -> dict[str, str]:
    """host:port of every Redis server that runs, by service name."""
    found = {}
    for name, service in running(config, profiles).items():
        command = service.get("command") or []
        if command[:1] == ["redis-server"]:
            port = command[command.index("--port") + 1] if "--port" in command else REDIS_PORT
            found[name] = f"{name}:{port}"
    return found


def address(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or REDIS_PORT}"


def redlock_addresses(environment: Mapping[str, str]) -> list[str]:
    urls = environment.get("REDLOCK_URLS") or ""
    return [address(url.strip()) for url in urls.split(",") if url.strip()]


def documented_command(profile: str) -> tuple[dict[str, str], list[str]]:
    """The variables and profiles of the command the file's header documents for `profile`."""
    for line in COMPOSE.read_text().splitlines():
        if line.startswith("#") and "docker compose" in line and f"--profile {profile}" in line:
            words = shlex.split(line.lstrip("#"))
            leading = itertools.takewhile(lambda word: re.fullmatch(r"\w+=.*", word), words)
            env = {name: value for name, _, value in (word.partition("=") for word in leading)}
            profiles = [words[n + 1] for n, word in enumerate(words) if word == "--profile"]
            return env, profiles
    raise AssertionError(f"{COMPOSE.name} documents no `docker compose --profile {profile}`")
