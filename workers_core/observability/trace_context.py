"""W3C Trace Context (``traceparent``) as submitters send it: checked, never trusted blindly.

An invalid header is ignored, not rejected: the W3C spec has a receiver that cannot parse
``traceparent`` start a new trace instead of failing the request, and a job must never be
refused over its tracing metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# https://www.w3.org/TR/trace-context/#traceparent-header-field-values
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16


@dataclass(frozen=True)
class TraceParent:
    """A valid ``traceparent``: the submitter's trace and the span that submitted the job."""

    trace_id: str
    parent_id: str
    flags: str

    @property
    def header(self) -> str:
        """Normalised to version 00, the one version this code understands."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The trace context in ``value``, or None when it is absent or invalid.

    Future versions (not ``00``, not ``ff``) may append fields after the flags; version 00
    may not. All-zero trace or parent ids are invalid.
    """
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, rest = match["version"], match["rest"]
    if version == "ff" or (version == "00" and rest):
        return None
    if match["trace_id"] == _ZERO_TRACE or match["parent_id"] == _ZERO_PARENT:
        return None
    return TraceParent(match["trace_id"], match["parent_id"], match["flags"])


def log_fields(traceparent: str | None) -> dict[str, str]:
    """What a job's log lines carry: ``trace_id`` and ``traceparent`` (empty without one)."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return {}
    return {"trace_id": parsed.trace_id, "traceparent": parsed.header}
