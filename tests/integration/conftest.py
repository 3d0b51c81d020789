"""Fixtures of the integration tests."""

from __future__ import annotations

import pytest

from tests.stores import closing_stores

close_stores = pytest.fixture(autouse=True)(closing_stores)
