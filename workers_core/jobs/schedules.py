"""Recurring jobs: the schedule model, its cron ticks (cronsim, Debian cron's DST rules) and
its Redis store: a hash per schedule, a sorted set by next fire time, a capped fire history.

Every change of a schedule's next fire time is one Lua call that checks what the caller
read (generation, next fire time, paused), so of several gateway replicas that fire the
same tick exactly one advances the schedule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workers_core.clock import Clock
from workers_core.errors import WorkersError
from workers_core.jobs.keys import RedisKeys
from workers_core.jobs.models import FollowUp, JobSubmission, check_chain_shape
from workers_core.jobs.store import JobStore, redis_errors_as_503

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MACROS = {  # Vixie cron's nicknames
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_STEPS = 100_000  # bound on ticks walked in one computation (a per-second cron, a day)


class ScheduleNotFound(WorkersError):
    status_code = 404
    problem_type = "schedule-not-found"
    retryable = False


class ScheduleExists(WorkersError):
    status_code = 409
    problem_type = "schedule-exists"
    retryable = False


def normalize_cron(expr: str) -> str:
    """The expression cronsim evaluates: 5 fields, or 6 with seconds first; nicknames expanded.
    Raises ValueError saying which field is wrong."""
    expr = " ".join(expr.split())
    expr = MACROS.get(expr.lower(), expr)
    if len(expr.split()) not in (5, 6):
        raise ValueError("expected 5 fields (minute hour day-of-month month day-of-week), "
                         "6 with seconds first, or a nickname such as @daily")
    try:
        CronSim(expr, datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"{exc} (fields: [second] minute hour day-of-month month "
                         "day-of-week)") from None
    return expr


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. Europe/Bucharest)") from None


class ScheduleSpec(BaseModel):
    """What a caller sends to create or replace a schedule (``PUT /v1/schedules/{id}``)."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(min_length=1, max_length=200, examples=["0 2 1 * *"],
                      description="5 fields, 6 with seconds first, or @daily/@hourly/…")
    timezone: str | None = Field(default=None, examples=["Europe/Bucharest"],
                                 description="IANA zone; default WORKERS_SCHEDULE_TIMEZONE.")
    task: str = Field(min_length=1, max_length=128, examples=["debug.echo"])
    payload: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    correlation_id: str | None = Field(default=None, max_length=128)
    then: list[FollowUp] = Field(default_factory=list, max_length=10)
    paused: bool = False
    start_at: datetime | None = Field(default=None, description="No tick before (naive: "
                                      "in the schedule's zone).")
    end_at: datetime | None = Field(default=None, description="No tick after.")
    misfire_grace_s: int | None = Field(
        default=None, ge=1, le=31 * 86400,
        description="After downtime the latest missed tick fires if it is at most this "
                    "late; older ticks are skipped. Default WORKERS_SCHEDULE_MISFIRE_GRACE_S.")
    description: str | None = Field(default=None, max_length=500)

    _then_shape = field_validator("then")(check_chain_shape)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return normalize_cron(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else zone(v).key

    @model_validator(mode="after")
    def _window(self) -> ScheduleSpec:
        if self.start_at and self.end_at and _aware(self.end_at, self) <= _aware(
                self.start_at, self):
            raise ValueError("end_at must be after start_at")
        return self

    def resolved(self, default_timezone: str) -> ScheduleSpec:
        """A copy with the zone filled in and naive start/end dates placed in that zone."""
        tz = self.timezone or default_timezone
        copy = self.model_copy(update={"timezone": tz})
        return copy.model_copy(update={
            "start_at": self.start_at and _aware(self.start_at, copy),
            "end_at": self.end_at and _aware(self.end_at, copy),
        })

    def job_submission(self) -> JobSubmission:
        """The job each tick submits."""
        return JobSubmission(task=self.task, payload=self.payload,
                             max_attempts=self.max_attempts,
                             correlation_id=self.correlation_id, then=self.then)

    def ticks(self) -> CronTicks:
        return CronTicks(self.cron, zone(self.timezone or "UTC"),
                         _epoch(self.start_at, self), _epoch(self.end_at, self))


class ScheduleCreate(ScheduleSpec):
    """``POST /v1/schedules``: the spec with the caller-chosen id."""

    id: str = Field(pattern=SCHEDULE_ID_PATTERN, examples=["reges-monthly-sync"],
                    description="Letters, digits, '.', '_', '-'; at most 128.")

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec.model_validate(self.model_dump(exclude={"id"}))


def _aware(dt: datetime, spec: ScheduleSpec) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=zone(spec.timezone or "UTC"))


def _epoch(dt: datetime | None, spec: ScheduleSpec) -> int | None:
    return None if dt is None else math.ceil(_aware(dt, spec).timestamp())


@dataclass(frozen=True)
class CronTicks:
    """The instants (whole epoch seconds) a cron expression fires at in a zone, within an
    optional [start, end] window. Guards against cronsim's naive-local arithmetic, which
    can answer an instant already past when asked from inside a repeated DST hour."""

    expr: str
    tz: ZoneInfo
    start_s: int | None = None
    end_s: int | None = None

    def next_after(self, ref_s: float) -> int | None:
        """The first tick strictly after ``ref_s``; None when the window is over."""
        ref = math.floor(ref_s)
        if self.start_s is not None:
            ref = max(ref, self.start_s - 1)
        it = CronSim(self.expr, datetime.fromtimestamp(ref, self.tz))
        try:
            for _ in range(_MAX_STEPS):
                tick = int(next(it).timestamp())
                if tick > ref:
                    break
            else:
                return None
        except StopIteration:  # nothing in the next 50 years
            return None
        return None if self.end_s is not None and tick > self.end_s else tick

    def latest_at_or_before(self, ref_s: float) -> int | None:
        """The last tick at or before ``ref_s`` (within the window), or None."""
        ref = math.floor(ref_s)
        if self.end_s is not None:
            ref = min(ref, self.end_s)
        it = CronSim(self.expr, datetime.fromtimestamp(ref + 1, self.tz), reverse=True)
        try:
            tick = int(next(it).timestamp())
            while tick > ref:
                tick = int(next(it).timestamp())
        except StopIteration:
            return None
        # Reverse iteration in local time can miss a tick inside a repeated hour: walk on.
        while (later := self.next_after(tick)) is not None and later <= ref:
            tick = later
        return None if self.start_s is not None and tick < self.start_s else tick

    def between(self, first_s: int, before_s: int, cap: int) -> int:
        """How many ticks fall in ``[first_s, before_s)``, counting at most ``cap``."""
        count, tick = 0, self.next_after(first_s - 1)
        while tick is not None and tick < before_s and count < cap:
            count, tick = count + 1, self.next_after(tick)
        return count

    def upcoming(self, after_s: float, n: int) -> list[int]:
        out: list[int] = []
        tick = self.next_after(after_s)
        while tick is not None and len(out) < n:
            out.append(tick)
            tick = self.next_after(tick)
        return out


class FireKind(StrEnum):
    SCHEDULED = "scheduled"  # on time
    CATCH_UP = "catch_up"    # the latest missed tick, fired late (within the grace window)
    MANUAL = "manual"        # :trigger
    SKIPPED = "skipped"      # missed ticks not fired
    FAILED = "failed"        # the job could not be made (task gone, payload no longer valid)


class FireRecord(BaseModel):
    at: datetime = Field(description="When it was recorded.")
    kind: FireKind
    tick: datetime | None = Field(default=None, description="The cron tick (the first one "
                                  "for `skipped`); null for manual fires.")
    job_id: str | None = None
    skipped: int = Field(default=0, description="Ticks this record stands for (skipped).")
    detail: str | None = None


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"  # past end_at, or the expression has no future tick


class Schedule(ScheduleCreate):
    """A schedule as stored, with its firing state (``GET /v1/schedules/{id}``)."""

    status: ScheduleStatus
    created_at: datetime
    updated_at: datetime
    next_fire_at: datetime | None = None
    last_tick_at: datetime | None = Field(default=None, description="Last tick fired.")
    last_fired_at: datetime | None = None
    last_job_id: str | None = None
    cron_description: str = Field(description="The expression in English (cronsim).")
    upcoming: list[datetime] = Field(default_factory=list,
                                     description="Next fire times (GET one schedule only).")
    recent_fires: list[FireRecord] = Field(default_factory=list,
                                           description="Newest first (GET one only).")


class SchedulePage(BaseModel):
    items: list[Schedule]
    next_cursor: str | None = None


@dataclass(frozen=True)
class StoredSchedule:
    """A schedule hash as read: what a compare-and-set must name to change it."""

    id: str
    spec: ScheduleSpec
    generation: str
    next_fire_s: int | None
    paused: bool
    fields: dict[str, str]

    def view(self, preview: int = 0, fires: Sequence[str] = (), now_s: float = 0) -> Schedule:
        f = self.fields
        status = (ScheduleStatus.PAUSED if self.paused else
                  ScheduleStatus.ACTIVE if self.next_fire_s is not None else ScheduleStatus.ENDED)
        tz = zone(self.spec.timezone or "UTC")
        upcoming = self.spec.ticks().upcoming(now_s, preview) if preview and not self.paused else []
        return Schedule(
            # The hash's flag, not the spec's: :pause/:resume change only the flag.
            id=self.id, **self.spec.model_dump(exclude={"paused"}), paused=self.paused,
            status=status,
            created_at=_dt(f["created_at"]), updated_at=_dt(f["updated_at"]),
            next_fire_at=_dt(str(self.next_fire_s), tz) if self.next_fire_s else None,
            last_tick_at=_dt(f.get("last_tick_at", ""), tz),
            last_fired_at=_dt(f.get("last_fired_at", "")),
            last_job_id=f.get("last_job_id") or None,
            cron_description=CronSim(self.spec.cron, datetime.now(UTC)).explain(),
            upcoming=[datetime.fromtimestamp(t, tz) for t in upcoming],
            recent_fires=[FireRecord.model_validate_json(r) for r in fires],
        )


def _dt(raw: str, tz: ZoneInfo | None = None) -> Any:
    return datetime.fromtimestamp(float(raw), tz or UTC) if raw else None


_UPSERT = """
local exists = redis.call('EXISTS', KEYS[1]) == 1
if exists and ARGV[1] == 'create' then return 'exists' end
if not exists then redis.call('HSET', KEYS[1], 'id', ARGV[2], 'created_at', ARGV[6]) end
redis.call('HSET', KEYS[1], 'spec', ARGV[3], 'paused', ARGV[4], 'next_fire_at', ARGV[5],
           'updated_at', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'generation', 1)
if ARGV[5] ~= '' and ARGV[4] == '0' then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
else redis.call('ZREM', KEYS[2], ARGV[2]) end
redis.call('ZADD', KEYS[3], 0, ARGV[2])
if exists then return 'replaced' end
return 'created'
"""

# Compare-and-set of the next fire time. ARGV: id, generation, expected next, new next,
# expected paused, new paused, now, fired tick, job id, history length, records...
_ADVANCE = """
local cur = redis.call('HMGET', KEYS[1], 'generation', 'next_fire_at', 'paused')
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] or cur[3] ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'next_fire_at', ARGV[4], 'paused', ARGV[6])
if ARGV[5] ~= ARGV[6] then redis.call('HSET', KEYS[1], 'updated_at', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'last_tick_at', ARGV[8]) end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'last_job_id', ARGV[9], 'last_fired_at', ARGV[7])
end
if ARGV[4] ~= '' and ARGV[6] == '0' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else redis.call('ZREM', KEYS[2], ARGV[1]) end
for i = 11, #ARGV do redis.call('LPUSH', KEYS[3], ARGV[i]) end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[10]) - 1)
return 1
"""

_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_job_id', ARGV[1], 'last_fired_at', ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
"""


class ScheduleStore:
    """Schedules in Redis, over the job store's connection pool and clock."""

    def __init__(self, jobs: JobStore, history_len: int) -> None:
        self.redis: Any = jobs.redis
        self.keys: RedisKeys = jobs.keys
        self.clock: Clock = jobs.clock
        self.history_len = history_len
        self._upsert = jobs.redis.register_script(_UPSERT)
        self._advance = jobs.redis.register_script(_ADVANCE)
        self._record = jobs.redis.register_script(_RECORD)

    async def put(self, schedule_id: str, spec: ScheduleSpec,
                  mode: Literal["create", "put"]) -> bool:
        """Store a resolved spec; its next tick counts from now. True if it was created."""
        now = self.clock.now()
        nxt = spec.ticks().next_after(now)
        args = [mode, schedule_id, spec.model_dump_json(), "1" if spec.paused else "0",
                "" if nxt is None else str(nxt), repr(now)]
        async with redis_errors_as_503():
            verdict = await self._upsert(keys=[
                self.keys.schedule(schedule_id), self.keys.schedules_due,
                self.keys.schedules], args=args)
        if verdict == "exists":
            raise ScheduleExists(f"schedule {schedule_id!r} exists; PUT replaces it",
                                 schedule_id=schedule_id)
        return bool(verdict == "created")

    async def load(self, schedule_id: str) -> StoredSchedule:
        async with redis_errors_as_503():
            fields = await self.redis.hgetall(self.keys.schedule(schedule_id))
        if not fields:
            raise ScheduleNotFound(f"no schedule {schedule_id!r}", schedule_id=schedule_id)
        return _stored(fields)

    async def get(self, schedule_id: str, preview: int) -> Schedule:
        async with redis_errors_as_503():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.keys.schedule(schedule_id))
            pipe.lrange(self.keys.schedule_fires(schedule_id), 0, self.history_len - 1)
            fields, fires = await pipe.execute()
        if not fields:
            raise ScheduleNotFound(f"no schedule {schedule_id!r}", schedule_id=schedule_id)
        return _stored(fields).view(preview, fires, self.clock.now())

    async def page(self, cursor: str | None, limit: int) -> SchedulePage:
        """By id; pass ``next_cursor`` back as ``cursor`` for the next page."""
        async with redis_errors_as_503():
            ids = await self.redis.zrange(self.keys.schedules, f"({cursor}" if cursor else "-",
                                          "+", bylex=True, offset=0, num=limit)
            pipe = self.redis.pipeline(transaction=False)
            for schedule_id in ids:
                pipe.hgetall(self.keys.schedule(schedule_id))
            rows = await pipe.execute()
        items = [_stored(row).view() for row in rows if row]
        return SchedulePage(items=items, next_cursor=ids[-1] if len(ids) == limit else None)

    async def delete(self, schedule_id: str) -> None:
        async with redis_errors_as_503():
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(self.keys.schedule(schedule_id))
            pipe.delete(self.keys.schedule_fires(schedule_id))
            pipe.zrem(self.keys.schedules_due, schedule_id)
            pipe.zrem(self.keys.schedules, schedule_id)
            deleted, *_ = await pipe.execute()
        if not deleted:
            raise ScheduleNotFound(f"no schedule {schedule_id!r}", schedule_id=schedule_id)

    async def due(self, now_s: float, limit: int) -> list[tuple[str, int]]:
        """Schedules whose next tick is at or before ``now_s``, earliest first."""
        async with redis_errors_as_503():
            rows = await self.redis.zrangebyscore(self.keys.schedules_due, "-inf", now_s,
                                                  start=0, num=limit, withscores=True)
        return [(schedule_id, int(score)) for schedule_id, score in rows]

    async def advance(self, s: StoredSchedule, next_fire_s: int | None, *,
                      paused: bool | None = None, fired_tick: int | None = None,
                      job_id: str | None = None, records: Sequence[FireRecord] = ()) -> bool:
        """Move ``s`` on, if no one else has since it was read; True if this call did."""
        was = "1" if s.paused else "0"
        now = "0" if paused is False else "1" if paused else was
        args = [s.id, s.generation, "" if s.next_fire_s is None else str(s.next_fire_s),
                "" if next_fire_s is None else str(next_fire_s), was, now,
                repr(self.clock.now()), "" if fired_tick is None else str(fired_tick),
                job_id or "", self.history_len, *(r.model_dump_json() for r in records)]
        async with redis_errors_as_503():
            done = await self._advance(keys=[
                self.keys.schedule(s.id), self.keys.schedules_due,
                self.keys.schedule_fires(s.id)], args=args)
        return bool(done)

    async def set_paused(self, schedule_id: str, paused: bool) -> None:
        """Pause (next tick kept) or resume (from the next tick after now): compare-and-set,
        read again if a replica fired or someone replaced it meanwhile."""
        for _ in range(10):
            s = await self.load(schedule_id)
            if s.paused == paused:
                return
            nxt = s.next_fire_s if paused else s.spec.ticks().next_after(self.clock.now())
            if await self.advance(s, nxt, paused=paused):
                return
        raise RuntimeError(f"schedule {schedule_id!r} kept changing; try again")

    async def record(self, schedule_id: str, job_id: str, record: FireRecord) -> None:
        """A fire outside the cron (``:trigger``): history and last job, next tick unchanged."""
        async with redis_errors_as_503():
            await self._record(keys=[self.keys.schedule(schedule_id),
                                     self.keys.schedule_fires(schedule_id)],
                               args=[job_id, repr(self.clock.now()), self.history_len,
                                     record.model_dump_json()])


def _stored(fields: dict[str, str]) -> StoredSchedule:
    nxt = fields.get("next_fire_at", "")
    return StoredSchedule(
        id=fields["id"], spec=ScheduleSpec.model_validate_json(fields["spec"]),
        generation=fields["generation"], next_fire_s=int(nxt) if nxt else None,
        paused=fields.get("paused") == "1", fields=fields)
