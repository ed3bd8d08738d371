"""Types every runtime passes (faust, Quix Streams, aiokafka loops, tests).

Imports nothing from the project, so any layer can use it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Incoming:
    """A message as read from a source topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @classmethod
    def of(cls, record: Any) -> Incoming:
        """A faust message or an aiokafka record (both carry these attributes) as input."""
        headers = tuple(record.headers) if record.headers else ()
        return cls(record.topic, record.partition, record.offset, record.key, record.value,
                   headers)  # fmt: skip

    @property
    def lineage(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"
