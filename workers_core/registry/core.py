"""The registry's state and rules, free of Ray and Redis: heartbeats in, records and events
out; time comes from an injectable clock so TTLs are tested by moving it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from workers_core.clock import Clock, SystemClock
from workers_core.registry import scoring
from workers_core.registry.models import (
    EventType,
    HealthDetail,
    Heartbeat,
    RegistryEvent,
    ReportedStatus,
    TagSummary,
    WorkerMetrics,
    WorkerRecord,
    WorkerStatus,
)

LATE_AFTER_INTERVALS = 1.5  # a heartbeat is late once 1.5 periods have passed without one
_REPORTABLE = frozenset(s.value for s in ReportedStatus)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class _Worker:
    tag: str
    replica_id: str
    registered_at: float
    last_seen: float
    since: float
    interval_s: float
    node: str = ""
    version: str = ""
    reported: ReportedStatus = ReportedStatus.IDLE
    health_endpoint: str | None = None
    metrics: WorkerMetrics | None = None
    health: HealthDetail | None = None
    stopped: bool = False
    missing: bool = False
    late: bool = False

    @property
    def status(self) -> WorkerStatus:
        if self.stopped:
            return WorkerStatus.STOPPED
        if self.missing:
            return WorkerStatus.MISSING
        if self.health is not None and not self.health.ok:
            return WorkerStatus.ERROR
        return WorkerStatus(self.reported.value)

    def record(self) -> WorkerRecord:
        metrics = self.metrics or WorkerMetrics()
        health = self.health or HealthDetail()
        status = self.status
        return WorkerRecord(
            tag=self.tag, replica_id=self.replica_id, node=self.node, version=self.version,
            status=status, since=_utc(self.since), registered_at=_utc(self.registered_at),
            last_seen=_utc(self.last_seen), interval_s=self.interval_s,
            health_endpoint=self.health_endpoint, metrics=metrics, health=health,
            late=self.late,
            health_score=scoring.worker_score(status, health, metrics, self.late),
        )


class WorkerRegistry:
    """Workers by (tag, replica id). Every change returns the events it caused."""

    def __init__(self, *, ttl_s: float, default_interval_s: float, forget_after_s: float,
                 clock: Clock | None = None) -> None:
        self.ttl_s = ttl_s
        self.default_interval_s = default_interval_s
        self.forget_after_s = forget_after_s
        self.clock = clock or SystemClock()
        self._workers: dict[tuple[str, str], _Worker] = {}

    def heartbeat(self, tag: str, hb: Heartbeat) -> list[RegistryEvent]:
        """Register (first beat, or after stopping) or refresh a worker."""
        now = self.clock.now()
        key = (tag, hb.replica_id)
        worker = self._workers.get(key)
        if worker is None or worker.stopped:
            worker = _Worker(tag=tag, replica_id=hb.replica_id, registered_at=now,
                             last_seen=now, since=now, interval_s=self.default_interval_s)
            self._workers[key] = worker
            kind, detail = EventType.REGISTERED, None
        elif worker.missing or worker.late:
            kind, detail = EventType.RECOVERED, "was missing" if worker.missing else "was late"
        else:
            kind, detail = None, None
        before = worker.status
        worker.node, worker.version, worker.reported = hb.node, hb.version, hb.status
        worker.health_endpoint, worker.metrics, worker.health = (
            hb.health_endpoint, hb.metrics, hb.health)
        worker.interval_s = hb.interval_s or self.default_interval_s
        worker.last_seen, worker.missing, worker.late = now, False, False
        if worker.status is not before:
            worker.since = now
        return [] if kind is None else [self._event(kind, worker, detail)]

    def unregister(self, tag: str, replica_id: str | None = None) -> list[RegistryEvent]:
        """Mark one worker of ``tag`` (or all of them) stopped."""
        now = self.clock.now()
        events = []
        for worker in self._of_tag(tag):
            if worker.stopped or (replica_id is not None and worker.replica_id != replica_id):
                continue
            worker.stopped, worker.late, worker.since = True, False, now
            events.append(self._event(EventType.UNREGISTERED, worker, None))
        return events

    def sweep(self) -> list[RegistryEvent]:
        """Late and missing workers; forget the long stopped or missing."""
        now = self.clock.now()
        events = []
        for key, worker in list(self._workers.items()):
            if worker.stopped or worker.missing:
                if now - worker.since > self.forget_after_s:
                    del self._workers[key]
                continue
            silent_s = now - worker.last_seen
            if silent_s > self.ttl_s:
                worker.missing, worker.late, worker.since = True, False, now
                events.append(self._event(EventType.MISSING, worker, f"silent {silent_s:.0f} s"))
            elif not worker.late and silent_s > LATE_AFTER_INTERVALS * worker.interval_s:
                worker.late = True
                events.append(self._event(EventType.HEARTBEAT_LATE, worker,
                                          f"silent {silent_s:.0f} s"))
        return events

    def restore(self, records: Iterable[WorkerRecord]) -> None:
        """Load records mirrored before a restart; the next sweep judges their silence."""
        for r in records:
            reported = (ReportedStatus(r.status.value) if r.status.value in _REPORTABLE
                        else ReportedStatus.IDLE)
            self._workers[(r.tag, r.replica_id)] = _Worker(
                tag=r.tag, replica_id=r.replica_id, registered_at=r.registered_at.timestamp(),
                last_seen=r.last_seen.timestamp(), since=r.since.timestamp(),
                interval_s=r.interval_s, node=r.node, version=r.version, reported=reported,
                health_endpoint=r.health_endpoint, metrics=r.metrics, health=r.health,
                stopped=r.status is WorkerStatus.STOPPED,
                missing=r.status is WorkerStatus.MISSING, late=r.late,
            )

    def tags(self) -> list[str]:
        return sorted({tag for tag, _ in self._workers})

    def summary(self, tag: str) -> TagSummary | None:
        workers = [w.record() for w in self._of_tag(tag)]
        if not workers:
            return None
        workers.sort(key=lambda r: r.replica_id)
        counts = Counter(r.status for r in workers)
        return TagSummary(
            tag=tag,
            health_score=scoring.tag_score((r.status, r.health_score) for r in workers),
            counts={s: counts.get(s, 0) for s in WorkerStatus},
            workers=workers,
        )

    def summaries(self) -> list[TagSummary]:
        return [s for tag in self.tags() if (s := self.summary(tag)) is not None]

    def status_counts(self) -> dict[WorkerStatus, int]:
        counts = Counter(w.status for w in self._workers.values())
        return {s: counts.get(s, 0) for s in WorkerStatus}

    def _of_tag(self, tag: str) -> list[_Worker]:
        return [w for (t, _), w in self._workers.items() if t == tag]

    def _event(self, kind: EventType, worker: _Worker, detail: str | None) -> RegistryEvent:
        return RegistryEvent(type=kind, tag=worker.tag, replica_id=worker.replica_id,
                             at=_utc(self.clock.now()), status=worker.status, detail=detail)
