"""Settings from the environment (pydantic-settings), each with a documented default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.admission import DepthLimits
from domain.queue_order import QueueOrder
from infrastructure.redis.client import ClusterSeeds, Sentinels

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - chosen only when API keys protect the API


class Settings(BaseSettings):
    """Read when an entry point starts, never at import time."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(default=None, description="Redis of the queues; unset: local")
    redis_cluster_urls: str = Field(
        default="", description="redis://host:port,... of a Redis Cluster; set: over REDIS_URL"
    )
    redlock_urls: str = Field(default="", description="comma-separated Redlock masters")
    redis_sentinels: str = Field(
        default="", description="host:port,... of Redis Sentinels; set: the master they name"
    )
    redis_master_name: str = Field(
        default="mymaster", min_length=1, description="the master's name at the sentinels"
    )
    enqueue_replicas: int = Field(
        default=0, ge=0, le=16, description="replicas that must hold a task before its 202"
    )
    enqueue_replicas_timeout_ms: int = Field(
        default=500, ge=1, le=60_000, description="how long an enqueue waits for them"
    )
    redis_timeout_ms: int = Field(
        default=3_000, ge=100, le=600_000, description="a Redis command's answer, or 503"
    )
    port: int = Field(default=3000, ge=1, le=65535)
    host: str | None = Field(default=None, description="unset: 127.0.0.1 unless API_KEYS")
    allowed_hosts: str = Field(
        default="", description="Host headers served; unset: loopback names unless API_KEYS"
    )
    queues: str = Field(default="", description="queue names; unset: default + the types'")
    max_event_streams: int = Field(default=100, ge=1, le=100_000)
    event_buffer: int = Field(default=1_000, ge=1, le=1_000_000)
    lock_ttl_ms: int = Field(default=30_000, ge=300)
    lock_retry_ms: int = Field(default=5_000, ge=1, description="delay after a denied lock")
    lock_tries: int = Field(default=3, ge=1)
    lock_retry_delay_ms: int = Field(default=200, ge=0)
    lock_retry_jitter_ms: int = Field(default=100, ge=0)
    max_stalls: int = Field(default=3, ge=0)
    default_timeout_ms: int = Field(default=300_000, ge=1)
    shutdown_grace_ms: int = Field(default=30_000, ge=0)
    idempotency_window_ms: int = Field(default=86_400_000, ge=1)
    retain_completed_ms: int = Field(default=7 * 86_400_000, ge=0, description="0 = forever")
    retain_failed_ms: int = Field(default=30 * 86_400_000, ge=0, description="0 = forever")
    retain_cancelled_ms: int = Field(default=7 * 86_400_000, ge=0, description="0 = forever")
    retain_completed_count: int = Field(
        default=0, ge=0, description="completed tasks kept per queue, the newest; 0 = no count"
    )
    retain_failed_count: int = Field(
        default=0, ge=0, description="failed tasks kept per queue, the newest; 0 = no count"
    )
    retain_cancelled_count: int = Field(
        default=0, ge=0, description="cancelled tasks kept per queue, the newest; 0 = no count"
    )
    max_queue_depth: int = Field(
        default=0,
        ge=0,
        description="unfinished tasks (waiting, delayed, active) a queue may hold, beyond "
        "which an enqueue is a 429; 0 = no limit",
    )
    queue_max_depths: str = Field(
        default="", description="per-queue depth limits, reports=1000,emails=50000 (0 = none)"
    )
    worker_concurrency: int = Field(default=10, ge=1)
    worker_processes: int = Field(
        default_factory=lambda: max(os.cpu_count() or 1, 1),
        ge=1,
        description="child processes per worker for executor='process' task types",
    )
    worker_queues: str = Field(
        default="default",
        description="a,b: strict order; a=3,b=1: weighted round robin (a weight: 1 to 100)",
    )
    files_base_dir: Path = Path("./data/files")
    redis_data_dir: Path = Path("./data/redis")
    embedded_redis_port: int = Field(default=6379, ge=1, le=65535)
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_from: str = "conveyor@localhost"
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    api_keys: str = Field(
        default="", repr=False, description="name:key:role,... (producer or admin); empty: open"
    )
    cors_origins: str = Field(default="", description="comma-separated origins allowed by CORS")
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    task_modules: str = Field(
        default="infrastructure.tasks.demo",
        validation_alias=AliasChoices("CONVEYOR_TASK_MODULES", "task_modules"),
    )

    @property
    def queue_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @model_validator(mode="after")
    def _replicas_in_time(self) -> Settings:
        # WAIT holds the API's one hot-path connection: it must answer before that
        # connection's own timeout would close it on every caller.
        if self.enqueue_replicas_timeout_ms >= self.redis_timeout_ms:
            raise ValueError(
                f"ENQUEUE_REPLICAS_TIMEOUT_MS must be under REDIS_TIMEOUT_MS "
                f"({self.redis_timeout_ms})"
            )
        return self

    @field_validator("redis_cluster_urls")
    @classmethod
    def _cluster_urls(cls, spec: str) -> str:
        ClusterSeeds.parse(spec)  # refused at start, naming the bad entry
        return spec

    @model_validator(mode="after")
    def _one_kind_of_redis(self) -> Settings:
        if self.cluster is None:
            return self
        if self.redis_sentinels.strip():
            raise ValueError(
                "REDIS_CLUSTER_URLS and REDIS_SENTINELS: set one (a Cluster fails over itself)"
            )
        if self.enqueue_replicas:
            raise ValueError(
                "ENQUEUE_REPLICAS is not supported on a Cluster yet (WAIT would have to go to "
                "each master an enqueue wrote to): unset it, or use REDIS_SENTINELS"
            )
        return self

    @property
    def cluster(self) -> ClusterSeeds | None:
        """REDIS_CLUSTER_URLS, when set: then REDIS_URL is not used."""
        return ClusterSeeds.parse(self.redis_cluster_urls)

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels(cls, spec: str) -> str:
        _sentinel_addresses(spec)  # refused at start, naming the bad entry
        return spec

    @property
    def sentinels(self) -> Sentinels | None:
        """REDIS_SENTINELS and REDIS_MASTER_NAME, when the first is set."""
        addresses = _sentinel_addresses(self.redis_sentinels)
        return Sentinels(addresses, self.redis_master_name) if addresses else None

    @property
    def local_redis_url(self) -> str:
        """Where `conveyor up` looks for a Redis, and starts one if none answers."""
        return f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def redlock_url_list(self) -> list[str]:
        return [url.strip() for url in self.redlock_urls.split(",") if url.strip()]

    @property
    def locks_with_tasks(self) -> bool:
        """The lock's one master is the queue's Redis: scripts take and release it there.
        Not on a Cluster: `lock:task:<id>` is in a slot of its own, not the queue's."""
        return not self.redlock_url_list and self.cluster is None

    @property
    def task_module_list(self) -> list[str]:
        return [name.strip() for name in self.task_modules.split(",") if name.strip()]

    @property
    def listen_host(self) -> str:
        """An open API (no API_KEYS) stays on loopback unless HOST says otherwise."""
        if self.host:
            return self.host
        return ALL_INTERFACES if self.api_keys.strip() else "127.0.0.1"

    @property
    def allowed_host_list(self) -> list[str]:
        """The Host headers the API serves; ["*"] for any."""
        named = [host.strip() for host in self.allowed_hosts.split(",") if host.strip()]
        if named:
            return named
        return ["*"] if self.api_keys.strip() else list(LOOPBACK_HOSTS)

    @property
    def queue_list(self) -> list[str]:
        """QUEUES as given; empty when unset (then the task types' queues decide)."""
        return [name.strip() for name in self.queues.split(",") if name.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @field_validator("queue_max_depths")
    @classmethod
    def _depth_limits(cls, spec: str, info: ValidationInfo) -> str:
        named = DepthLimits.parse(spec)  # its ValueError names what is wrong
        queues = [name.strip() for name in info.data.get("queues", "").split(",") if name.strip()]
        unknown = sorted(set(named) - set(queues)) if queues else []
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not in QUEUES ({','.join(queues)})")
        return spec

    @property
    def depth_limits(self) -> DepthLimits:
        return DepthLimits(self.max_queue_depth, DepthLimits.parse(self.queue_max_depths))

    @field_validator("worker_queues")
    @classmethod
    def _queue_order(cls, spec: str) -> str:
        QueueOrder.parse(spec)  # its ValueError names what is wrong
        return spec

    @property
    def worker_queue_order(self) -> QueueOrder:
        return QueueOrder.parse(self.worker_queues)

    @property
    def worker_queue_list(self) -> list[str]:
        return self.worker_queue_order.names


def _sentinel_addresses(spec: str) -> tuple[tuple[str, int], ...]:
    found = []
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"REDIS_SENTINELS: {entry!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)
