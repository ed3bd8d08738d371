"""The local broker's KRaft cluster id: never one the storage tool reads as an option."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator

import pytest

from hub.kafka import local


def test_ids_are_22_characters_of_base64url_and_never_start_with_a_dash() -> None:
    # One draw in 64 starts with "-" when nothing is redrawn: 4,000 draws miss it with
    # probability (63/64)**4000, about 1e-27.
    ids = [local._cluster_id() for _ in range(4000)]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)


def test_a_draw_starting_with_a_dash_or_reserved_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dash = bytes([0xF8]) + bytes(range(1, 16))  # six high bits 62: "-" in base64url
    draws: Iterator[bytes] = iter([dash, bytes(16), bytes(15) + b"\x01", bytes(range(16))])
    monkeypatch.setattr(local.uuid, "uuid4", lambda: uuid.UUID(bytes=next(draws)))
    assert base64.urlsafe_b64encode(dash).decode().startswith("-")
    assert local._cluster_id() == base64.urlsafe_b64encode(bytes(range(16))).decode()[:22]
    assert next(draws, None) is None
