"""The unit tier runs without a database (`make test-fast`): a test here that asks for one fails at once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def server_url() -> str:
    pytest.fail("tests/unit use no database: move this test to tests/integration")
