"""Recurring jobs against real Redis, with a manual clock: validation, one job per tick
across concurrent schedulers, misfires, DST in Europe/Bucharest, pause/resume, trigger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from workers_core.clock import ManualClock
from workers_core.config import Settings
from workers_core.deployments.api import GatewayState, create_api, resolve_submission
from workers_core.deployments.completion import CompletionWaiter
from workers_core.jobs.models import JobSubmission
from workers_core.jobs.scheduler import Scheduler, idempotency_key
from workers_core.jobs.schedules import CronTicks, FireKind, ScheduleSpec, ScheduleStore
from workers_core.jobs.store import JobStore, NewJob
from workers_core.tasks.registry import TaskCatalog

BUCHAREST = ZoneInfo("Europe/Bucharest")
START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC).timestamp()
ECHO = {"task": "debug.echo", "payload": {"message": "tick"}}


@pytest.fixture
def manual() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
async def jobs(settings: Settings, manual: ManualClock) -> AsyncIterator[JobStore]:
    store = JobStore.from_settings(settings, manual)
    yield store
    await store.close()


@pytest.fixture
def state(settings: Settings, jobs: JobStore) -> GatewayState:
    return GatewayState(settings=settings, store=jobs, catalog=TaskCatalog.discover(),
                        waiter=CompletionWaiter(jobs.redis, jobs.keys.done_channel))


@pytest.fixture
def schedules(jobs: JobStore, settings: Settings) -> ScheduleStore:
    return ScheduleStore(jobs, settings.schedule_history_len)


def _resolver(state: GatewayState) -> Callable[[JobSubmission, str], NewJob]:
    return lambda sub, key: resolve_submission(state, sub, (), key)


@pytest.fixture
def scheduler(schedules: ScheduleStore, jobs: JobStore, state: GatewayState,
              settings: Settings, manual: ManualClock) -> Scheduler:
    return Scheduler(schedules, jobs, _resolver(state), settings, manual)


@pytest.fixture
async def http(state: GatewayState) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api(state)),
                                 base_url="http://gw") as client:
        yield client


async def _create(http: httpx.AsyncClient, schedule_id: str, cron: str,
                  **extra: Any) -> dict[str, Any]:
    resp = await http.post("/v1/schedules", json={"id": schedule_id, "cron": cron, **ECHO,
                                                  **extra})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _job_ids(jobs: JobStore) -> list[str]:
    page = await jobs.list_jobs(task="debug.echo", limit=500)
    return [j.id for j in page.items]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field", "why"), [
    ({"cron": "61 * * * *"}, "cron", "Bad minute"),
    ({"cron": "0 0 * *"}, "cron", "expected 5 fields"),
    ({"cron": "0 0 30 2 *"}, "cron", "Bad day-of-month"),
    ({"timezone": "Europe/Atlantis"}, "timezone", "unknown IANA time zone"),
    ({"id": "no spaces"}, "id", "String should match pattern"),
    ({"payload": {"message": 5}}, "payload.message", "valid string"),
    ({"misfire_grace_s": 0}, "misfire_grace_s", "greater than or equal to 1"),
    ({"start_at": "2026-05-01T00:00:00", "end_at": "2026-04-01T00:00:00"}, "body",
     "end_at must be after start_at"),
])
async def test_invalid_schedule_is_422_naming_the_field_and_why(
    http: httpx.AsyncClient, body: dict[str, Any], field: str, why: str
) -> None:
    resp = await http.post("/v1/schedules", json={"id": "s1", "cron": "0 2 1 * *", **ECHO,
                                                  **body})
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert any(e["field"] == field and why in e["message"] for e in errors), errors


async def test_unknown_task_is_404_as_for_jobs(http: httpx.AsyncClient) -> None:
    resp = await http.post("/v1/schedules", json={"id": "s1", "cron": "@daily",
                                                  "task": "no.such"})
    assert resp.status_code == 404


async def test_post_refuses_an_existing_id_and_put_replaces_it(
    http: httpx.AsyncClient
) -> None:
    first = await _create(http, "reges-monthly", "0 2 1 * *")
    assert first["timezone"] == "Europe/Bucharest"
    assert first["next_fire_at"] == "2026-04-01T02:00:00+03:00"
    assert (await http.post("/v1/schedules", json={"id": "reges-monthly", "cron": "@daily",
                                                   **ECHO})).status_code == 409
    replaced = await http.put("/v1/schedules/reges-monthly",
                              json={"cron": "@daily", "timezone": "UTC", **ECHO})
    assert replaced.status_code == 200
    assert replaced.json()["next_fire_at"] == "2026-03-03T00:00:00Z"
    created = await http.put("/v1/schedules/saft-nightly", json={"cron": "0 1 * * *", **ECHO})
    assert created.status_code == 201
    listed = (await http.get("/v1/schedules")).json()["items"]
    assert [s["id"] for s in listed] == ["reges-monthly", "saft-nightly"]


# -- firing ------------------------------------------------------------------------------------

async def test_concurrent_schedulers_make_one_job_per_tick(
    http: httpx.AsyncClient, settings: Settings, manual: ManualClock, state: GatewayState
) -> None:
    for name in ("a", "b", "c"):
        await _create(http, name, "* * * * *")
    stores = [JobStore.from_settings(settings, manual) for _ in range(5)]
    replicas = [Scheduler(ScheduleStore(s, 50), s, _resolver(state), settings, manual)
                for s in stores]
    try:
        created = []
        for _ in range(4):
            manual.advance(60)
            counts = await asyncio.gather(*(r.step() for r in replicas for _ in range(2)))
            created.append(sum(counts))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert created == [3, 3, 3, 3]
    keys = [j.idempotency_key for j in (await state.store.list_jobs(limit=100)).items]
    assert len(keys) == len(set(keys)) == 12
    detail = (await http.get("/v1/schedules/a")).json()
    fired = [f for f in detail["recent_fires"] if f["kind"] == FireKind.SCHEDULED]
    assert len(fired) == 4 and len({f["job_id"] for f in fired}) == 4
    assert detail["last_job_id"] == fired[0]["job_id"]


async def test_a_replica_that_died_after_submitting_leaves_no_duplicate(
    http: httpx.AsyncClient, scheduler: Scheduler, jobs: JobStore, state: GatewayState,
    manual: ManualClock,
) -> None:
    schedule = await _create(http, "nightly", "0 * * * *", timezone="UTC")
    tick = int(_ts(schedule["next_fire_at"]))
    manual.advance(3600)
    # What a replica did before dying: the tick's job is stored, the schedule not advanced.
    sub = JobSubmission.model_validate(ECHO)
    key = idempotency_key("nightly", tick)
    [orphan] = await jobs.submit_many([resolve_submission(state, sub, (), key)])
    assert await scheduler.step() == 0
    detail = (await http.get("/v1/schedules/nightly")).json()
    assert detail["last_job_id"] == orphan.id
    assert _ts(detail["next_fire_at"]) == tick + 3600
    assert await _job_ids(jobs) == [orphan.id]


async def test_after_downtime_only_the_latest_missed_tick_fires(
    http: httpx.AsyncClient, scheduler: Scheduler, jobs: JobStore, manual: ManualClock
) -> None:
    await _create(http, "minutely", "* * * * *")
    manual.advance(10 * 60 + 5)  # ticks at +1 … +10 min were missed
    assert await scheduler.step() == 1
    assert await scheduler.step() == 0
    detail = (await http.get("/v1/schedules/minutely")).json()
    catch_up, skipped = detail["recent_fires"][:2]
    assert catch_up["kind"] == "catch_up" and _ts(catch_up["tick"]) == START + 600
    assert skipped["kind"] == "skipped" and skipped["skipped"] == 9
    assert _ts(skipped["tick"]) == START + 60
    assert _ts(detail["next_fire_at"]) == START + 660
    assert len(await _job_ids(jobs)) == 1


async def test_ticks_older_than_the_grace_window_are_skipped_and_recorded(
    http: httpx.AsyncClient, scheduler: Scheduler, jobs: JobStore, manual: ManualClock
) -> None:
    await _create(http, "hourly", "0 * * * *", misfire_grace_s=120)
    manual.advance(5 * 3600 + 600)  # the latest tick is 10 min late: past the grace
    assert await scheduler.step() == 0
    detail = (await http.get("/v1/schedules/hourly")).json()
    [skipped] = detail["recent_fires"]
    assert skipped["kind"] == "skipped" and skipped["skipped"] == 5
    assert _ts(detail["next_fire_at"]) == START + 6 * 3600
    assert await _job_ids(jobs) == []


@pytest.mark.parametrize(("start_local", "expected_utc"), [
    # 29 March 2026: 03:00 EET jumps to 04:00 EEST; 03:30 does not exist -> fires at 04:00.
    (datetime(2026, 3, 29, 1, 0), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    # 25 October 2026: 04:00 EEST falls back to 03:00 EET; 03:30 happens twice -> once.
    (datetime(2026, 10, 25, 1, 0), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
])
async def test_a_daily_tick_fires_once_across_the_dst_change_in_bucharest(
    settings: Settings, state: GatewayState, schedules: ScheduleStore, jobs: JobStore,
    manual: ManualClock, start_local: datetime, expected_utc: datetime,
) -> None:
    manual._now = start_local.replace(tzinfo=BUCHAREST).timestamp()
    spec = ScheduleSpec(cron="30 3 * * *", timezone="Europe/Bucharest", **ECHO)
    await schedules.put("payroll", spec, "create")
    scheduler = Scheduler(schedules, jobs, _resolver(state), settings, manual)
    fired = 0
    for _ in range(6 * 6):  # six hours of real time, a poll every 10 minutes
        manual.advance(600)
        fired += await scheduler.step()
    assert fired == 1
    detail = await schedules.get("payroll", 3)
    assert detail.last_tick_at is not None
    assert detail.last_tick_at.astimezone(UTC) == expected_utc
    assert detail.upcoming[0].hour == 3 and detail.upcoming[0].minute == 30


def test_cron_ticks_follow_debian_cron_around_dst() -> None:
    ticks = CronTicks("30 3 * * *", BUCHAREST)
    before_fall_back = datetime(2026, 10, 24, 12, tzinfo=BUCHAREST).timestamp()
    utc = [datetime.fromtimestamp(t, UTC).isoformat() for t in
           ticks.upcoming(before_fall_back, 2)]
    assert utc == ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    # Asked from inside the repeated hour (03:10 EET, after the 03:30 EEST tick passed):
    inside = datetime(2026, 10, 25, 1, 10, tzinfo=UTC).timestamp()
    assert ticks.next_after(inside) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC).timestamp()
    assert ticks.latest_at_or_before(inside) == datetime(2026, 10, 25, 0, 30,
                                                         tzinfo=UTC).timestamp()


# -- operator actions --------------------------------------------------------------------------

async def test_paused_schedule_does_not_fire_and_resumes_from_the_next_tick(
    http: httpx.AsyncClient, scheduler: Scheduler, jobs: JobStore, manual: ManualClock
) -> None:
    await _create(http, "m", "* * * * *")
    paused = await http.post("/v1/schedules/m:pause")
    assert paused.json()["status"] == "paused"
    manual.advance(5 * 60)
    assert await scheduler.step() == 0
    resumed = (await http.post("/v1/schedules/m:resume")).json()
    assert resumed["status"] == "active"
    assert _ts(resumed["next_fire_at"]) == START + 6 * 60  # paused ticks are not caught up
    manual.advance(60)
    assert await scheduler.step() == 1
    assert len(await _job_ids(jobs)) == 1


async def test_the_paused_field_follows_pause_and_resume(http: httpx.AsyncClient) -> None:
    await _create(http, "p", "* * * * *")
    assert (await http.post("/v1/schedules/p:pause")).json()["paused"] is True
    assert (await http.get("/v1/schedules/p")).json()["paused"] is True
    assert (await http.post("/v1/schedules/p:resume")).json()["paused"] is False


async def test_trigger_fires_now_and_leaves_the_next_tick(
    http: httpx.AsyncClient, jobs: JobStore
) -> None:
    created = await _create(http, "t", "0 2 1 * *", paused=True)
    first = await http.post("/v1/schedules/t:trigger", headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202
    again = await http.post("/v1/schedules/t:trigger", headers={"Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    job = await jobs.get(first.json()["id"])
    assert job.payload == ECHO["payload"]
    detail = (await http.get("/v1/schedules/t")).json()
    assert detail["next_fire_at"] == created["next_fire_at"]
    assert [f["kind"] for f in detail["recent_fires"]] == ["manual"]
    assert detail["last_job_id"] == job.id
    assert (await http.post("/v1/schedules/nope:trigger")).status_code == 404


async def test_get_previews_next_fire_times_in_the_schedule_zone(
    http: httpx.AsyncClient
) -> None:
    await _create(http, "weekdays", "0 9 * * MON-FRI")
    detail = (await http.get("/v1/schedules/weekdays", params={"preview": 3})).json()
    assert detail["upcoming"] == ["2026-03-03T09:00:00+02:00", "2026-03-04T09:00:00+02:00",
                                  "2026-03-05T09:00:00+02:00"]
    assert "09:00" in detail["cron_description"]


async def test_end_at_ends_the_schedule(
    http: httpx.AsyncClient, scheduler: Scheduler, manual: ManualClock
) -> None:
    end = datetime.fromtimestamp(START + 150, UTC).isoformat()
    await _create(http, "short", "* * * * *", end_at=end)
    for _ in range(4):
        manual.advance(60)
        await scheduler.step()
    detail = (await http.get("/v1/schedules/short")).json()
    assert detail["status"] == "ended" and detail["next_fire_at"] is None
    assert sum(f["kind"] == "scheduled" for f in detail["recent_fires"]) == 2


async def test_deleted_schedule_fires_no_more(
    http: httpx.AsyncClient, scheduler: Scheduler, jobs: JobStore, manual: ManualClock
) -> None:
    await _create(http, "gone", "* * * * *")
    assert (await http.delete("/v1/schedules/gone")).status_code == 204
    assert (await http.get("/v1/schedules/gone")).status_code == 404
    assert (await http.delete("/v1/schedules/gone")).status_code == 404
    manual.advance(120)
    assert await scheduler.step() == 0
    assert await _job_ids(jobs) == []


async def test_a_tick_whose_job_is_refused_is_recorded_and_the_schedule_moves_on(
    schedules: ScheduleStore, scheduler: Scheduler, manual: ManualClock
) -> None:
    # Stored directly, as if its task type was removed after the schedule was accepted.
    spec = ScheduleSpec(cron="* * * * *", timezone="UTC", task="retired.task")
    await schedules.put("orphan", spec, "create")
    manual.advance(60)
    assert await scheduler.step() == 0
    detail = await schedules.get("orphan", 0)
    assert [f.kind for f in detail.recent_fires] == [FireKind.FAILED]
    assert detail.recent_fires[0].detail and "retired.task" in detail.recent_fires[0].detail
    assert detail.next_fire_at is not None
    assert detail.next_fire_at.timestamp() == START + 120
