"""The lifecycle every connector follows: start, serve, stop (and say whether it is ready)."""

from __future__ import annotations

from typing import Protocol


class Connector(Protocol):
    name: str

    async def start(self) -> None:
        """Acquire resources (Kafka producer, sockets); raise if that is impossible."""

    async def stop(self) -> None:
        """Release them; safe to call twice and after a failed start."""

    def ready(self) -> bool:
        """True when the connector can do its work now (used by /readyz)."""
