"""Logging setup (structlog, JSON lines) with secrets redacted; called only at entry points."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|private[_-]?key|cert(ificate)?|"
    r"cookie|credential)",
    re.IGNORECASE,
)
SECRET_VALUES = re.compile(
    r"(Bearer\s+[A-Za-z0-9._~+/=-]+|xox[abpr]-[A-Za-z0-9-]+|"
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|"
    r"redis://[^:@/\s]*:[^@/\s]+@|Basic\s+[A-Za-z0-9+/=]{8,}|"
    r"\b[a-z][a-z0-9+.-]*://[^:@/\s]*:[^@/\s]+@)",
)
# ``password=…``, ``"api_key": "…"``, ``Authorization: …`` inside free text (an error
# message, a traceback, a repr of a dict): the name stays, the value goes.
SECRET_ASSIGNMENTS = re.compile(
    r"""(\b[\w-]*(?:pass(?:word|wd)?|secret|token|api[_-]?key|authorization)['"]?\s*[:=]\s*"""
    r"""['"]?)(?!\[redacted\])[^\s'",;&}\]]+""",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return SECRET_ASSIGNMENTS.sub(r"\1" + REDACTED, SECRET_VALUES.sub(REDACTED, value))
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: secret-looking keys and values never reach a log line."""
    for key in list(event_dict):
        if SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is *now*: a stream captured at configure
    time (a test runner's, a CLI runner's) may be closed by the time something logs."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*_: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Route structlog and stdlib logging to stderr, one JSON object per line."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
