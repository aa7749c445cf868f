"""mailflow.engine.memory: glibc's malloc is tuned where it is glibc, left alone elsewhere.

bench/outbound_memory.py and bench/inbound_memory.py measure the effect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mailflow.engine import memory

ON_GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")


@pytest.fixture(autouse=True)
def fresh_lookup() -> Iterator[None]:
    """The C library is looked up once per process: each test looks afresh."""
    memory._glibc.cache_clear()
    yield
    memory._glibc.cache_clear()


@pytest.mark.skipif(not ON_GLIBC, reason="glibc only")
def test_on_glibc_every_setting_takes_effect() -> None:
    assert memory.configure_allocator() is True
    memory.release_free_memory()  # callable, and harmless, after a large message


def test_elsewhere_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "confstr", lambda name: "musl")
    assert memory.configure_allocator() is False
    memory.release_free_memory()  # nothing to call, nothing raised


def test_without_confstr_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(name: str) -> str:
        raise ValueError(name)

    monkeypatch.setattr(os, "confstr", unsupported)
    assert memory.configure_allocator() is False
