"""Real-process tests run `qunyun up` on the embedded server by default: their temporary
directories must be reachable by the server's account (see `runner.scratch_dir`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.runner import scratch_dir


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """pytest's tmp_path, moved out of /tmp/pytest-of-<user>."""
    with scratch_dir("qunyun-e2e-") as path:
        yield path
