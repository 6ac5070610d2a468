"""`workers-core`: start the local platform and work with jobs from the shell.

Exit codes (scripts branch on them):
  0 ok (with --wait: the job succeeded)   3 the job failed or was dead-lettered
  1 unexpected error                      4 the job was cancelled
  2 bad usage or invalid request (422)    5 --wait timed out (the job goes on)
  6 not found (404) or conflict (409)     7 the platform is unreachable or unavailable
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from workers_core.client import (
    APIError,
    CircuitOpen,
    Conflict,
    InvalidRequest,
    NotFound,
    TransportError,
    Unavailable,
    WaitTimeout,
    WorkersClient,
)
from workers_core.jobs.models import Job, JobStatus, QueueStats

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_JOB_FAILED, EXIT_JOB_CANCELLED, EXIT_WAIT_TIMEOUT = 3, 4, 5
EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 6, 7

JOB_EXIT = {JobStatus.SUCCEEDED: EXIT_OK, JobStatus.FAILED: EXIT_JOB_FAILED,
            JobStatus.DEAD: EXIT_JOB_FAILED, JobStatus.CANCELLED: EXIT_JOB_CANCELLED}


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@contextmanager
def _client(ctx: click.Context) -> Iterator[WorkersClient]:
    """The SDK client, with its errors turned into a message on stderr and an exit code."""
    opts = ctx.obj
    try:
        with WorkersClient(opts["url"], token=opts["token"], timeout_s=opts["timeout"]) as wc:
            yield wc
    except InvalidRequest as exc:
        for err in exc.errors:
            click.echo(f"  {err.get('field')}: {err.get('message')}", err=True)
        _fail(EXIT_USAGE, f"invalid request: {exc.detail}")
    except (NotFound, Conflict) as exc:
        _fail(EXIT_NOT_FOUND, exc.detail)
    except (TransportError, CircuitOpen, Unavailable) as exc:
        _fail(EXIT_UNAVAILABLE, f"platform unavailable at {opts['url']}: {exc}")
    except APIError as exc:
        _fail(EXIT_ERROR, str(exc))


def _fail(code: int, message: str) -> None:
    click.echo(f"workers-core: {message}", err=True)
    sys.exit(code)


def _load_json(value: str) -> dict[str, Any]:
    """Inline JSON, ``@file.json``, or ``-`` for stdin."""
    if value == "-":
        value = sys.stdin.read()
    elif value.startswith("@"):
        value = Path(value[1:]).read_text(encoding="utf-8")
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise click.BadParameter("the payload must be a JSON object")
    return data


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="WORKERS_API_URL", default="http://127.0.0.1:8000",
              show_default=True, help="Platform API (env WORKERS_API_URL).")
@click.option("--token", envvar="WORKERS_API_TOKEN", default=None,
              help="Bearer token (env WORKERS_API_TOKEN).")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds per HTTP request.")
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None, timeout: float) -> None:
    """workers-core: durable document and compliance jobs on Ray."""
    ctx.obj = {"url": url, "token": token, "timeout": timeout}


@main.command()
def up() -> None:
    """Set up and start a local Redis (AOF), Ray head and the platform; print the URLs."""
    from workers_core.config import Settings
    from workers_core.local import stack

    info = stack.up(Settings())
    click.echo(stack.info_json(info))


@main.command()
def down() -> None:
    """Stop what `up` started."""
    from workers_core.config import Settings
    from workers_core.local import stack

    stack.down(Settings())
    click.echo("stopped")


@main.command()
@click.argument("task")
@click.option("--json", "payload", default="{}", help="Payload: JSON, @file.json or - (stdin).")
@click.option("--artifact", "artifacts", multiple=True, metavar="FIELD=PATH",
              help="Upload PATH and put its artifact id in payload FIELD (repeatable).")
@click.option("--max-attempts", type=int)
@click.option("--correlation-id")
@click.option("--idempotency-key", help="Repeat submissions with it return the same job.")
@click.option("--not-before", help="ISO 8601 time or epoch seconds.")
@click.option("--wait", is_flag=True, help="Wait for the job; the exit code tells how it ended.")
@click.option("--wait-timeout", type=float, default=None, help="Give up waiting after N s.")
@click.pass_context
def submit(ctx: click.Context, task: str, payload: str, artifacts: tuple[str, ...],
           max_attempts: int | None, correlation_id: str | None, idempotency_key: str | None,
           not_before: str | None, wait: bool, wait_timeout: float | None) -> None:
    """Submit a TASK job; print its id (or, with --wait, the finished job)."""
    body = _load_json(payload)
    with _client(ctx) as wc:
        for spec in artifacts:
            field, sep, path = spec.partition("=")
            if not sep or not field or not Path(path).is_file():
                raise click.BadParameter(f"{spec!r}: expected FIELD=PATH to a file")
            body[field] = wc.upload(Path(path), _guess_type(path)).id
        accepted = wc.submit(task, body, max_attempts=max_attempts,
                             correlation_id=correlation_id, idempotency_key=idempotency_key,
                             not_before=_parse_time(not_before))
        if not wait:
            _echo_json(accepted.model_dump(mode="json"))
            return
        try:
            job = wc.wait(accepted.id, timeout=wait_timeout)
        except WaitTimeout as exc:
            _echo_json(exc.job.model_dump(mode="json"))
            _fail(EXIT_WAIT_TIMEOUT, str(exc))
            return
    _echo_json(job.model_dump(mode="json"))
    sys.exit(JOB_EXIT.get(job.status, EXIT_ERROR))


@main.command()
@click.argument("job_id")
@click.option("--wait", "wait_s", type=float, default=0, help="Long-poll up to N s.")
@click.pass_context
def get(ctx: click.Context, job_id: str, wait_s: float) -> None:
    """Show one job."""
    with _client(ctx) as wc:
        job = wc.get(job_id) if not wait_s else _wait_quietly(wc, job_id, wait_s)
    _echo_json(job.model_dump(mode="json"))


def _wait_quietly(wc: WorkersClient, job_id: str, wait_s: float) -> Job:
    try:
        return wc.wait(job_id, timeout=wait_s)
    except WaitTimeout as exc:
        return exc.job


@main.command()
@click.option("--task")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.pass_context
def jobs(ctx: click.Context, task: str | None, status: str | None, limit: int,
         as_json: bool) -> None:
    """List jobs, newest first."""
    with _client(ctx) as wc:
        found = list(wc.jobs(task=task, status=status, limit=limit, page_size=min(limit, 500)))
    if as_json:
        for job in found:
            click.echo(job.model_dump_json())
        return
    rows = [(j.id, j.task, j.status.value, f"{j.attempts}/{j.max_attempts}",
             j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
             (j.error.message if j.error else "")[:60]) for j in found]
    _table(("ID", "TASK", "STATUS", "ATTEMPTS", "CREATED (UTC)", "ERROR"), rows)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def queues(ctx: click.Context, as_json: bool) -> None:
    """Per queue: length, pending, lag, delayed, dead-lettered, replicas, drain and target.

    \b
    workers-core queues
    workers-core queues drain ocr      # take no new jobs; in-flight ones finish
    workers-core queues resume ocr
    workers-core queues scale ocr 3    # within the pool's min/max; `auto`: backlog rule
    """
    if ctx.invoked_subcommand is not None:
        return
    with _client(ctx) as wc:
        stats = wc.queues()
    if as_json:
        _echo_json([q.model_dump(mode="json") for q in stats])
        return
    rows = [(q.queue, q.length, q.pending, q.lag, f"{q.oldest_waiting_s:.1f}", q.delayed,
             q.dead_lettered, q.replicas) for q in stats]
    _table(("QUEUE", "LENGTH", "PENDING", "LAG", "OLDEST_S", "DELAYED", "DEAD", "REPLICAS"), rows)


def _pool_state(q: QueueStats) -> None:
    target = "auto" if q.operator_target is None else q.operator_target
    click.echo(f"{q.queue}: {'draining' if q.draining else 'taking jobs'}, target {target}, "
               f"replicas {q.replicas} (min {q.min_replicas}, max {q.max_replicas})")


def _pool_command(name: str, doc: str, action: Callable[[WorkersClient, str], QueueStats]
                  ) -> None:
    @queues.command(name=name, help=doc)
    @click.argument("queue")
    @click.pass_context
    def command(ctx: click.Context, queue: str) -> None:
        with _client(ctx) as wc:
            _pool_state(action(wc, queue))


_pool_command("drain", "Stop the pool taking new jobs; in-flight jobs finish (needs ops:admin).",
              WorkersClient.drain)
_pool_command("resume", "Undo `drain` (needs ops:admin).", WorkersClient.resume)


@queues.command("scale")
@click.argument("queue")
@click.argument("replicas")
@click.pass_context
def queues_scale(ctx: click.Context, queue: str, replicas: str) -> None:
    """Ask an autoscaled pool for REPLICAS within its min/max, or `auto` (needs ops:admin)."""
    try:
        wanted = None if replicas == "auto" else int(replicas)
    except ValueError:
        raise click.BadParameter("a whole number, or `auto`", param_hint="REPLICAS") from None
    with _client(ctx) as wc:
        _pool_state(wc.scale(queue, wanted))


@main.command()
@click.argument("tag", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def workers(ctx: click.Context, tag: str | None, as_json: bool) -> None:
    """The worker registry: each worker's status, health score and failed checks.

    \b
    workers-core workers
    workers-core workers pdf.render --json
    """
    with _client(ctx) as wc:
        tags = wc.workers(tag)
    if as_json:
        _echo_json([t.model_dump(mode="json") for t in tags])
        return
    rows = [(t.tag, t.health_score, w.replica_id.rsplit("#", 1)[-1], w.status.value,
             w.health_score, w.metrics.in_flight, w.metrics.tasks_ok, w.metrics.tasks_failed,
             w.last_seen.strftime("%H:%M:%S"),
             ", ".join(k for k, v in w.health.checks.items() if v.startswith("error")) or "-")
            for t in tags for w in t.workers]
    _table(("TAG", "TAG_SCORE", "REPLICA", "STATUS", "SCORE", "IN_FLIGHT", "OK", "FAILED",
            "LAST_SEEN", "FAILED_CHECKS"), rows)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="With payload and result schemas.")
@click.pass_context
def tasks(ctx: click.Context, as_json: bool) -> None:
    """Task types the platform accepts."""
    with _client(ctx) as wc:
        found = wc.tasks()
    if as_json:
        _echo_json(found)
        return
    _table(("TASK", "QUEUE", "MAX_ATTEMPTS", "TIME_LIMIT_S", "RATE_LIMIT"),
           [(t["name"], t["queue"], t["max_attempts"], t["time_limit_s"], t["rate_limit"] or "")
            for t in found])


def _job_command(name: str, doc: str, action: Callable[[WorkersClient, str], Job]) -> None:
    @main.command(name=name, help=doc)
    @click.argument("job_id")
    @click.pass_context
    def command(ctx: click.Context, job_id: str) -> None:
        with _client(ctx) as wc:
            _echo_json(action(wc, job_id).model_dump(mode="json"))


_job_command("cancel", "Cancel a job (a running one is asked to stop).", WorkersClient.cancel)
_job_command("retry", "Queue a failed or dead-lettered job again.", WorkersClient.retry)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--content-type", default=None, help="Default: guessed from the name.")
@click.pass_context
def upload(ctx: click.Context, path: Path, content_type: str | None) -> None:
    """Store a file as an artifact; print its id and metadata."""
    with _client(ctx) as wc:
        meta = wc.upload(path, content_type or _guess_type(str(path)))
    _echo_json(meta.model_dump(mode="json"))


@main.command()
@click.argument("artifact_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_context
def download(ctx: click.Context, artifact_id: str, output: Path) -> None:
    """Save an artifact (e.g. a rendered PDF) to a file."""
    with _client(ctx) as wc:
        output.write_bytes(wc.download(artifact_id))
    click.echo(str(output))


def _guess_type(path: str) -> str:
    import mimetypes

    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _parse_time(value: str | None) -> datetime | float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither ISO 8601 nor epoch seconds",
                                 param_hint="--not-before") from None


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@main.command()
@click.option("--url", "url", default=None, help="Platform API (default: the group's --url).")
@click.option("--token", "token", default=None, help="Bearer token (default: the group's).")
@click.option("--echo-timeout", type=float, default=60.0, show_default=True,
              help="Seconds the debug.echo round trip may take.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def validate(ctx: click.Context, url: str | None, token: str | None, echo_timeout: float,
             as_json: bool) -> None:
    """Check a running deployment end to end; exit 1 on any FAIL, 7 if the API is down.

    \b
    Example:
      workers-core validate --url https://jobs.example.ro --token "$TOKEN"
    """
    from workers_core.deploy_check import validate_deployment

    report = validate_deployment(url or ctx.obj["url"], token=token or ctx.obj["token"],
                                 timeout_s=ctx.obj["timeout"], echo_timeout_s=echo_timeout)
    click.echo(report.model_dump_json(indent=2) if as_json else report.text())
    if not report.ok:
        sys.exit(EXIT_UNAVAILABLE if report.api_unreachable else EXIT_ERROR)


@main.group()
def schedules() -> None:
    """Recurring jobs: cron schedules fired once per tick by the gateways.

    \b
    workers-core schedules add reges-monthly "0 2 1 * *" reges.submit --json @payload.json
    workers-core schedules list
    workers-core schedules trigger reges-monthly
    """


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.pass_context
def schedules_list(ctx: click.Context, as_json: bool) -> None:
    """Every schedule with its status, next fire time and last job."""
    with _client(ctx) as wc:
        found = list(wc.schedules())
    if as_json:
        for s in found:
            click.echo(s.model_dump_json())
        return
    _table(("ID", "CRON", "TIMEZONE", "TASK", "STATUS", "NEXT", "LAST_JOB"),
           [(s.id, s.cron, s.timezone, s.task, s.status.value,
             s.next_fire_at.isoformat() if s.next_fire_at else "-", s.last_job_id or "-")
            for s in found])


@schedules.command("get")
@click.argument("schedule_id")
@click.option("--preview", type=int, default=None, help="Next fire times to show.")
@click.pass_context
def schedules_get(ctx: click.Context, schedule_id: str, preview: int | None) -> None:
    """One schedule, its next fire times and its recent fires (with job ids)."""
    with _client(ctx) as wc:
        _echo_json(wc.get_schedule(schedule_id, preview).model_dump(mode="json"))


@schedules.command("add")
@click.argument("schedule_id")
@click.argument("cron")
@click.argument("task")
@click.option("--json", "payload", default="{}", help="Payload: JSON, @file.json or - (stdin).")
@click.option("--timezone", help="IANA zone (default: the platform's, Europe/Bucharest).")
@click.option("--max-attempts", type=int)
@click.option("--misfire-grace-s", type=int, help="How late a missed tick may still fire.")
@click.option("--start-at", help="ISO 8601; no tick before.")
@click.option("--end-at", help="ISO 8601; no tick after.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--replace", is_flag=True, help="Replace a schedule with this id.")
@click.pass_context
def schedules_add(ctx: click.Context, schedule_id: str, cron: str, task: str, payload: str,
                  timezone: str | None, max_attempts: int | None,
                  misfire_grace_s: int | None, start_at: str | None, end_at: str | None,
                  paused: bool, replace: bool) -> None:
    """Register SCHEDULE_ID: a TASK job at every CRON tick (5 fields, 6 with seconds first,
    or @daily/@hourly/…)."""
    with _client(ctx) as wc:
        schedule = wc.put_schedule(
            schedule_id, cron, task, _load_json(payload), replace=replace, timezone=timezone,
            max_attempts=max_attempts, misfire_grace_s=misfire_grace_s, start_at=start_at,
            end_at=end_at, paused=paused)
    _echo_json(schedule.model_dump(mode="json"))


def _schedule_command(name: str, doc: str, action: Callable[[WorkersClient, str], Any]) -> None:
    @schedules.command(name=name, help=doc)
    @click.argument("schedule_id")
    @click.pass_context
    def command(ctx: click.Context, schedule_id: str) -> None:
        with _client(ctx) as wc:
            result = action(wc, schedule_id)
        _echo_json(result.model_dump(mode="json") if result is not None else
                   {"deleted": schedule_id})


_schedule_command("rm", "Delete a schedule (jobs it made stay).", WorkersClient.delete_schedule)
_schedule_command("pause", "Stop firing until resumed.", WorkersClient.pause_schedule)
_schedule_command("resume", "Fire again from the next tick.", WorkersClient.resume_schedule)
_schedule_command("trigger", "Fire one job now, outside the cron.",
                  WorkersClient.trigger_schedule)


@main.group()
def sandbox() -> None:
    """Stand-ins for outside services on loopback, for local runs (never for production)."""


@sandbox.command("anaf")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8098, show_default=True)
def sandbox_anaf(host: str, port: int) -> None:
    """ANAF: OAuth2 (authorize redirects straight back), the v9 taxpayer lookup (100 CUIs,
    1 req/s), fault injection. Prints the WORKERS_ANAF_* values that point at it.

    \b
    Example:
      workers-core sandbox anaf --port 8098
    """
    from workers_core.sandbox.anaf import main as serve_anaf

    serve_anaf(["--host", host, "--port", str(port)])


@sandbox.command("reges")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8099, show_default=True)
def sandbox_reges(host: str, port: int) -> None:
    """REGES-ONLINE: the Keycloak password grant, submit → receipt, the FIFO result queue
    (Read/CommitRead/PollMessage), schema errors as 400 (judged by reges.xsd when present).

    \b
    Example:
      workers-core sandbox reges --port 8099
    """
    from workers_core.sandbox.reges import main as serve_reges

    serve_reges(["--host", host, "--port", str(port)])


def _register_subgroups() -> None:
    """Domain command groups live next to their code; they are attached here."""
    from workers_core.efactura.cli import efactura
    from workers_core.etransport.cli import etransport
    from workers_core.integrations.anaf.cli import anaf
    from workers_core.saft.cli import saft
    from workers_core.security.cli import token

    for group in (efactura, etransport, saft, anaf, token):
        main.add_command(group)


_register_subgroups()
