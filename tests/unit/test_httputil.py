"""Retry-After, read one way for every client (SDK, ANAF, Slack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from workers_core.httputil import retry_after_s


def test_delta_seconds_in_any_header_case() -> None:
    assert retry_after_s({"Retry-After": "7"}) == 7.0
    assert retry_after_s({"retry-after": ["3"]}) == 3.0
    assert retry_after_s({"RETRY-AFTER": "-5"}) == 0.0


def test_an_http_date_becomes_seconds_from_now() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < (retry_after_s({"Retry-After": later}) or 0) <= 120


def test_absent_or_unreadable_is_none() -> None:
    assert retry_after_s({}) is None
    assert retry_after_s({"Retry-After": "soon"}) is None
