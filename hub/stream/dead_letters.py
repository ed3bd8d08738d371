"""Dead letters: the original message with its origin and the reason, and the limit that stops
a worker when the dead-letter rate says the deploy (not the data) is broken."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from hub.domain.records import DeadLetter, Header
from hub.domain.topics import dead_letter_topic
from hub.metrics import HubMetrics
from hub.stream.pipeline import Rejected
from hub.types import Incoming
from hub.wire.codec import Codec

# What an outbox's ``add`` takes: topic, key, value, headers.
Outgoing = tuple[str, bytes | None, bytes, tuple[tuple[str, bytes | None], ...]]


class DeadLetterLimitExceeded(RuntimeError):
    """Too many dead letters in the window: stop instead of dead-lettering everything."""


def dead_letter(msg: Incoming, rejected: Rejected, now: datetime, worker: str) -> DeadLetter:
    return DeadLetter(
        original_topic=msg.topic,
        original_partition=msg.partition,
        original_offset=msg.offset,
        original_key=msg.key,
        original_value=msg.value,
        original_headers=[Header(key=k, value=v) for k, v in msg.headers],
        stage=rejected.stage,
        reason=rejected.reason,
        detail=rejected.detail[:2000],
        failed_at=now,
        worker=worker,
    )


def letter_out(codec: Codec, metrics: HubMetrics, msg: Incoming, rejected: Rejected,
               now: datetime, worker: str) -> Outgoing:  # fmt: skip
    """The dead letter of ``msg`` as the message for ``dlq.<its topic>`` (its key and headers
    kept), counted in ``hub_dead_letters_total``: what every worker path hands its outbox."""
    topic = dead_letter_topic(msg.topic)
    value = codec.encode(DeadLetter.SCHEMA, dead_letter(msg, rejected, now, worker).to_avro())
    metrics.dead_letters.labels(topic, rejected.reason).inc()
    return topic, msg.key, value, msg.headers


def dead_letter_row(msg: Incoming, rejected: Rejected, province: str,
                    now: datetime) -> tuple[object, ...]:  # fmt: skip
    """The store's record of a dead letter (``dead_letters`` table): where it came from, why,
    and the province it names, so quality reports cover every event that arrived."""
    return (msg.topic, msg.partition, msg.offset, province, rejected.stage.value,
            rejected.reason, now)  # fmt: skip


class DeadLetterLimit:
    """Raises when more than ``max_ratio`` of the last ``window`` events were dead-lettered."""

    def __init__(self, window: int, max_ratio: float) -> None:
        self.window = window
        self.max_ratio = max_ratio
        self._recent: deque[bool] = deque(maxlen=window)
        self._bad = 0

    def record(self, dead: bool) -> None:
        if len(self._recent) == self.window and self._recent[0]:
            self._bad -= 1
        self._recent.append(dead)
        self._bad += dead
        if len(self._recent) == self.window and self._bad / self.window > self.max_ratio:
            raise DeadLetterLimitExceeded(
                f"{self._bad} of the last {self.window} events were dead-lettered "
                f"(limit {self.max_ratio:.0%}): the deploy looks broken, stopping the worker. "
                "Inspect with `hub dlq list`, fix, then `hub dlq replay`."
            )
