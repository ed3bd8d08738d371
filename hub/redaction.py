"""Secrets out of every line the hub prints: passwords in URLs become ``***``.

``postgresql://hub:s3cret@db/hub`` → ``postgresql://hub:***@db/hub``. Applied to settings shown
by ``hub status``, to error messages, and (through a log record factory) to every log record,
so a driver's message that quotes the URL does not leak it either.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# scheme://user:password@host — the password is everything up to the last '@' before the host.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?=@)")
# libpq key=value connection strings: password=… (quoted or not).
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every URL password and ``password=`` value replaced by ``***``."""
    if "@" not in text and "password" not in text.lower():
        return text
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)
    return _KV_PASSWORD.sub(lambda m: m.group("head") + "***", text)


def install_log_redaction() -> None:
    """Redact every log record the process creates, whichever logger or handler it meets.

    A record factory rather than a handler filter: faust, mode and aiokafka add their own
    handlers at start, and a filter on the root logger does not see records propagated from
    child loggers.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format: leave it to the handler
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
