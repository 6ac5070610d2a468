"""The SDK's retry, breaker and error mapping, against a scripted HTTP server (httpx's
MockTransport stands in for the platform's answers; the client code is the real one)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from workers_core.client import (
    AsyncWorkersClient,
    CircuitBreaker,
    CircuitOpen,
    Conflict,
    InvalidRequest,
    NotFound,
    Overloaded,
    RetryConfig,
    ServerError,
    TransportError,
    WaitTimeout,
    WorkersClient,
)
from workers_core.clock import ManualClock

JOB = {"id": "j1", "task": "debug.echo", "queue": "debug", "status": "queued",
       "max_attempts": 3, "created_at": "2026-01-01T00:00:00Z",
       "updated_at": "2026-01-01T00:00:00Z"}
ACCEPTED = {"id": "j1", "status": "queued", "location": "/v1/jobs/j1"}


def problem(status: int, kind: str, **extra: Any) -> httpx.Response:
    body = {"type": f"https://workers-core.dev/problems/{kind}", "status": status,
            "detail": f"{kind} happened", **extra}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


class Script:
    """Answers requests from a list, recording what was sent."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request],
                                                                       httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


def client(script: Script, clock: ManualClock | None = None, **kwargs: Any) -> WorkersClient:
    clock = clock or ManualClock()
    return WorkersClient(
        "http://platform.test", transport=httpx.MockTransport(script),
        sleep=clock.advance, monotonic=clock.now,
        breaker=kwargs.pop("breaker", CircuitBreaker(clock=clock)), **kwargs)


def test_submit_sends_the_job_with_an_idempotency_key_and_parses_the_answer() -> None:
    script = Script(httpx.Response(202, json=ACCEPTED))
    with client(script, token="t0ken") as wc:
        accepted = wc.submit("debug.echo", {"value": 1}, max_attempts=2, correlation_id="c-1")
    assert accepted.id == "j1"
    [req] = script.requests
    assert json.loads(req.content) == {"task": "debug.echo", "payload": {"value": 1},
                                       "max_attempts": 2, "correlation_id": "c-1"}
    assert req.headers["Idempotency-Key"].startswith("sdk-")
    assert req.headers["Authorization"] == "Bearer t0ken"


def test_429_and_503_are_retried_honouring_retry_after() -> None:
    clock = ManualClock()
    script = Script(problem(429, "overloaded"), httpx.Response(503, headers={"Retry-After": "7"}),
                    httpx.Response(202, json=ACCEPTED))
    with client(script, clock) as wc:
        assert wc.submit("debug.echo").id == "j1"
    assert len(script.requests) == 3
    # The same Idempotency-Key on every resend: the server sees one logical request.
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1
    assert clock.now() - 1_700_000_000.0 >= 7.0  # waited at least the server's Retry-After


def test_retries_give_up_with_the_typed_error() -> None:
    script = Script(*[problem(429, "overloaded")] * 3)
    with client(script, retry=RetryConfig(max_retries=2)) as wc, pytest.raises(Overloaded):
        wc.submit("debug.echo")
    assert len(script.requests) == 3


def test_problems_map_to_typed_errors_with_field_names() -> None:
    errors = [{"field": "payload.to.0", "message": "bad address", "type": "value_error"}]
    script = Script(problem(422, "invalid-payload", errors=errors), problem(404, "job-not-found"),
                    problem(409, "job-state-conflict"), problem(500, "internal-error"))
    with client(script, retry=RetryConfig(max_retries=0)) as wc:
        with pytest.raises(InvalidRequest) as invalid:
            wc.submit("email.send", {"to": ["nope"]})
        assert invalid.value.errors[0]["field"] == "payload.to.0"
        assert invalid.value.problem_type == "invalid-payload"
        with pytest.raises(NotFound):
            wc.get("missing")
        with pytest.raises(Conflict):
            wc.retry("j1")
        with pytest.raises(ServerError):
            wc.get("j1")


def test_a_non_idempotent_post_is_not_resent_after_an_ambiguous_transport_error() -> None:
    script = Script(httpx.ReadError("connection reset"))
    with client(script) as wc, pytest.raises(TransportError) as exc:
        wc.retry("j1")  # a manual retry may have been applied: sending again could act twice
    assert exc.value.sent and len(script.requests) == 1


def test_a_refused_connection_is_retried_for_any_request() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(202, json=JOB))
    with client(script) as wc:
        assert wc.retry("j1").id == "j1"
    assert len(script.requests) == 2


def test_submissions_are_resent_after_a_lost_answer() -> None:
    script = Script(httpx.ReadTimeout("no answer"), httpx.Response(200, json=ACCEPTED))
    with client(script) as wc:
        assert wc.submit("debug.echo").id == "j1"
    keys = [r.headers["Idempotency-Key"] for r in script.requests]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_circuit_opens_fails_fast_then_half_opens_after_the_reset_time() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=30, clock=clock)
    script = Script(*[httpx.ConnectError("refused")] * 3, httpx.Response(200, json=JOB))
    with client(script, clock, breaker=breaker, retry=RetryConfig(max_retries=0)) as wc:
        for _ in range(3):
            with pytest.raises(TransportError):
                wc.get("j1")
        with pytest.raises(CircuitOpen) as opened:
            wc.get("j1")
        assert len(script.requests) == 3  # refused without a request
        assert 0 < opened.value.retry_in_s <= 30
        clock.advance(30)
        assert breaker.state == "half-open"
        assert wc.get("j1").id == "j1"  # the trial call succeeds and closes it
        assert breaker.state == "closed"


def test_a_failed_trial_call_opens_the_circuit_again() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10, clock=clock)
    script = Script(httpx.ConnectError("refused"), problem(503, "store-unavailable"))
    with client(script, clock, breaker=breaker, retry=RetryConfig(max_retries=0)) as wc:
        with pytest.raises(TransportError):
            wc.get("j1")
        clock.advance(10)
        with pytest.raises(Exception, match="503"):
            wc.get("j1")
        assert breaker.state == "open"


def test_submit_many_chunks_and_keys_every_job() -> None:
    def accept(request: httpx.Request) -> httpx.Response:
        jobs = json.loads(request.content)["jobs"]
        return httpx.Response(202, json={"jobs": [
            {**ACCEPTED, "id": f"j{i}"} for i, _ in enumerate(jobs)]})

    script = Script(accept, accept, accept)
    with client(script) as wc:
        wc.core.batch_size = 1000
        accepted = wc.submit_many({"task": "debug.echo", "payload": {"value": i}}
                                  for i in range(2500))
    assert len(accepted) == 2500
    sizes = [len(json.loads(r.content)["jobs"]) for r in script.requests]
    assert sizes == [1000, 1000, 500]
    keys = {j["idempotency_key"] for r in script.requests for j in json.loads(r.content)["jobs"]}
    assert len(keys) == 2500


def test_submit_validates_locally_before_any_request() -> None:
    script = Script()
    with client(script) as wc, pytest.raises(ValueError, match="max_attempts"):
        wc.submit("debug.echo", max_attempts=0)
    assert script.requests == []


def test_wait_long_polls_until_finished_or_times_out() -> None:
    clock = ManualClock()

    def still_running(request: httpx.Request) -> httpx.Response:
        clock.advance(float(request.url.params["wait"]))  # the server held the poll
        return httpx.Response(200, json={**JOB, "status": "running"})

    script = Script(still_running, still_running, httpx.Response(
        200, json={**JOB, "status": "succeeded", "result": {"value": 1}}))
    with client(script, clock) as wc:
        job = wc.wait("j1", poll_s=20)
    assert job.result == {"value": 1}
    assert [float(r.url.params["wait"]) for r in script.requests] == [20.0, 20.0, 20.0]

    script = Script(still_running, still_running)
    with client(script, clock) as wc, pytest.raises(WaitTimeout) as timeout:
        wc.wait("j1", timeout=25, poll_s=20)
    assert timeout.value.job.status == "running"
    assert [float(r.url.params["wait"]) for r in script.requests] == [20.0, 5.0]


def test_jobs_iterates_pages_by_cursor() -> None:
    pages = [httpx.Response(200, json={"items": [{**JOB, "id": "j3"}, {**JOB, "id": "j2"}],
                                       "next_cursor": "j2"}),
             httpx.Response(200, json={"items": [{**JOB, "id": "j1"}], "next_cursor": None})]
    script = Script(*pages)
    with client(script) as wc:
        ids = [j.id for j in wc.jobs(task="debug.echo", page_size=2)]
    assert ids == ["j3", "j2", "j1"]
    assert "cursor" not in script.requests[0].url.params
    assert script.requests[1].url.params["cursor"] == "j2"


async def test_async_client_shares_the_same_behaviour() -> None:
    clock = ManualClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    script = Script(problem(503, "store-unavailable"), httpx.Response(202, json=ACCEPTED),
                    httpx.Response(200, json={**JOB, "status": "succeeded", "result": 5}))
    async with AsyncWorkersClient("http://platform.test", transport=httpx.MockTransport(script),
                                  sleep=sleep, monotonic=clock.now,
                                  breaker=CircuitBreaker(clock=clock)) as wc:
        assert await wc.run("debug.echo", {"value": 5}, timeout=10) == 5
    assert len(slept) == 1 and len(script.requests) == 3


def test_submit_carries_follow_ups_only_when_given() -> None:
    script = Script(httpx.Response(202, json=ACCEPTED), httpx.Response(202, json=ACCEPTED))
    with client(script) as wc:
        wc.submit("debug.echo", then=[{"task": "debug.echo",
                                       "payload": {"message": {"$parent": "result.message"}}}])
        wc.submit("debug.echo")
    first, second = (json.loads(r.content) for r in script.requests)
    assert first["then"][0]["payload"] == {"message": {"$parent": "result.message"}}
    assert "then" not in second


def test_get_reads_progress_and_accepts_a_platform_that_sends_none() -> None:
    progress = {"done": 300, "total": 1000, "updated_at": "2026-01-01T00:00:05Z",
                "fraction": 0.3}
    script = Script(httpx.Response(200, json={**JOB, "status": "running", "progress": progress}),
                    httpx.Response(200, json=JOB))  # an older platform: no progress field
    with client(script) as wc:
        running, older = wc.get("j1"), wc.get("j1")
    assert running.progress is not None
    assert (running.progress.done, running.progress.total, running.progress.fraction) == (
        300, 1000, 0.3)
    assert older.progress is None
