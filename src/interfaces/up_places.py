"""Where `conveyor up` serves: the API, its dashboard and schema, and the Redis it uses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from infrastructure.settings import ALL_INTERFACES, Settings

# A wildcard address is where the API listens, not an address to connect to.
_REACHABLE = {ALL_INTERFACES: "127.0.0.1", "::": "::1"}


class RedisOrigin(StrEnum):
    GIVEN = "given"  # REDIS_URL
    CLUSTER = "cluster"  # REDIS_CLUSTER_URLS
    SENTINELS = "sentinels"  # REDIS_SENTINELS: the master they name
    FOUND = "found"  # one already answered on the local port
    EMBEDDED = "embedded"  # started by `conveyor up`


@dataclass(frozen=True, slots=True)
class Places:
    api: str
    every_interface: bool
    keys: bool
    redis: str
    redis_note: str

    @classmethod
    def of(cls, settings: Settings, redis_url: str, origin: RedisOrigin) -> Places:
        host = settings.listen_host
        note = {
            RedisOrigin.GIVEN: "REDIS_URL",
            RedisOrigin.CLUSTER: "REDIS_CLUSTER_URLS, a Cluster",
            RedisOrigin.SENTINELS: f"REDIS_SENTINELS, master {settings.redis_master_name!r}",
            RedisOrigin.FOUND: "found running",
            RedisOrigin.EMBEDDED: f"embedded, data in {settings.redis_data_dir}",
        }[origin]
        return cls(
            api=base_url(_REACHABLE.get(host, host), settings.port),
            every_interface=host in _REACHABLE,
            keys=bool(settings.api_keys.strip()),
            redis=",".join(without_password(url) for url in redis_url.split(",")),
            redis_note=note,
        )

    @property
    def dashboard(self) -> str:
        return f"{self.api}/admin/queues"

    @property
    def docs(self) -> str:
        return f"{self.api}/schema"

    @property
    def schema(self) -> str:
        return f"{self.api}/schema/openapi.json"

    def lines(self) -> list[str]:
        """The block printed on a console."""
        where = " (listening on every interface)" if self.every_interface else ""
        key = " (asks for an admin key of API_KEYS)" if self.keys else ""
        return [
            "conveyor up",
            f"  API        {self.api}{where}",
            f"  dashboard  {self.dashboard}{key}",
            f"  docs       {self.docs} (also /schema/swagger)",
            f"  schema     {self.schema}",
            f"  Redis      {self.redis} ({self.redis_note})",
        ]

    def fields(self) -> dict[str, str | bool]:
        """The same, as the fields of one log line where lines are JSON."""
        return {
            "api": self.api,
            "every_interface": self.every_interface,
            "dashboard": self.dashboard,
            "admin_key_needed": self.keys,
            "docs": self.docs,
            "schema": self.schema,
            "redis": self.redis,
            "redis_from": self.redis_note,
        }


def base_url(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def without_password(url: str) -> str:
    """`url` with no password, in its user part or in a `password=` query parameter."""
    parts = urlsplit(url)
    address = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}@{address}" if parts.username else address
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))
