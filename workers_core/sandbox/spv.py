"""What the SPV halves of the ANAF sandbox (e-Factura, e-Transport) share: ANAF's clock and
timestamps, the verdict from the project's own validators, and "processed on ANAF's time"."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from workers_core.efactura.errors import MalformedXml, UnsafeXml
from workers_core.efactura.validate import IssueReport
from workers_core.integrations.anaf.http import ROMANIA

# The document's fatal validation messages ("[BR-RO-100] ..."); empty when it passes.
DocumentCheck = Callable[[bytes], list[str]]


def now_ro() -> dt.datetime:
    return dt.datetime.now(ROMANIA)


def stamp(moment: dt.datetime) -> str:
    """ANAF's ``YYYYMMDDHHmm`` timestamps."""
    return moment.strftime("%Y%m%d%H%M")


def rules_check(validate: Callable[[bytes, Path], IssueReport], root: Path) -> DocumentCheck:
    """ANAF's verdict from one of the project's validators (XSD + Schematron)."""

    def check(xml: bytes) -> list[str]:
        try:
            report = validate(xml, root)
        except (MalformedXml, UnsafeXml) as exc:
            return [f"[XML] {exc.message}"]
        return [f"[{issue.rule_id}] {issue.location}: {issue.text}" for issue in report.errors]

    return check


class Processed(Protocol):
    uploaded_at: dt.datetime
    processed_at: dt.datetime | None


@dataclass
class SpvState:
    """Verdicts, processing time and the lock every SPV route set keeps."""

    check: DocumentCheck | None = None
    processing_polls: int = 1  # stareMesaj says "in prelucrare" to this many queries
    processing_s: float = 1.0  # ... and the upload is processed (listed) this long after
    authorised_cifs: set[int] | None = None  # None: the token has rights for every CIF
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def judge(self, xml: bytes) -> list[str]:
        """The fatal validation messages for ``xml`` (off the event loop: it takes a while)."""
        if self.check is None:
            return []
        return await asyncio.to_thread(self.check, xml)

    def processed_at(self, upload: Processed) -> dt.datetime | None:
        """ANAF processes on its own time: after ``processing_s``, or when a query saw it.
        The caller holds the lock."""
        if upload.processed_at is None:
            ready = upload.uploaded_at + dt.timedelta(seconds=self.processing_s)
            if ready <= now_ro():
                upload.processed_at = ready
        return upload.processed_at
