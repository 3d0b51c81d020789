"""The Host policy of ALLOWED_HOSTS, without a server: names, ports, IPv6 and wildcards."""

from __future__ import annotations

import pytest

from infrastructure.settings import LOOPBACK_HOSTS
from interfaces.http.boundary import HostPolicy, host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:3000", "localhost"),
        ("127.0.0.1:3000", "127.0.0.1"),
        ("[::1]:3000", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),  # an ALLOWED_HOSTS entry may name an IPv6 address bare
        ("example.com.:80", "example.com"),
        ("", ""),
    ],
)
def test_a_host_is_compared_without_its_port(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    "header", ["localhost", "localhost:3000", "127.0.0.1:8080", "[::1]:3000", "[::1]"]
)
def test_the_loopback_names_are_served(header: str) -> None:
    assert HostPolicy(list(LOOPBACK_HOSTS)).admits(header)


@pytest.mark.parametrize(
    "header",
    [
        "evil.example.com",  # DNS rebinding: the page's own name, resolved to 127.0.0.1
        "localhost.evil.example.com",
        "127.0.0.2:3000",
        "",
        None,  # HTTP/1.0 without a Host: nothing says which site the page thought it was
    ],
)
def test_other_hosts_are_not(header: str | None) -> None:
    assert not HostPolicy(list(LOOPBACK_HOSTS)).admits(header)


def test_a_wildcard_entry_covers_the_names_below_it_only() -> None:
    policy = HostPolicy(["*.example.com", "api.example.org:443"])
    assert policy.admits("a.example.com")
    assert policy.admits("a.b.example.com:3000")
    assert not policy.admits("example.com")
    assert not policy.admits("badexample.com")
    assert policy.admits("api.example.org")
    assert not policy.admits("example.org")


def test_a_star_serves_every_host() -> None:
    assert HostPolicy(["*"]).admits("anything.example.com")
    assert HostPolicy(["*"]).admits(None)
