"""Chains: follow-up jobs created when a job succeeds, fed from the parent's result.

A follow-up's payload may hold ``{"$parent": "<path>"}`` values; the path walks the parent
job (``result.artifact_id``, ``result.pages.0.text``, ``id``, ``correlation_id``,
``payload.to``). The gateway checks follow-ups at submission (known task, payload valid
except where a reference stands), and the consumer resolves and validates them against the
real result before it settles the parent, so children are created in the same atomic step
that records the parent's success: never lost, never created twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from workers_core.errors import UnknownTask, WorkersError
from workers_core.jobs.models import FollowUp, JobSubmission
from workers_core.tasks.registry import TaskCatalog

PARENT_REF = "$parent"
Path = tuple[str | int, ...]


class ChainError(WorkersError):
    """A follow-up could not be built from the parent (missing path, invalid payload)."""

    problem_type = "chain-error"
    retryable = False


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(PARENT_REF), str)


def references(value: Any, at: Path = ()) -> Iterator[Path]:
    """Where ``{"$parent": ...}`` references stand in a payload."""
    if _is_ref(value):
        yield at
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from references(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from references(item, (*at, i))


def lookup(parent: dict[str, Any], path: str) -> Any:
    """``path`` (dotted, list indices as numbers) in the parent job."""
    node: Any = parent
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and _index_in(part, len(node)):
            node = node[int(part)]
        else:
            raise ChainError(f"the parent job has nothing at {path!r} (stopped at {part!r})")
    return node


def _index_in(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


def resolve(value: Any, parent: dict[str, Any]) -> Any:
    """The payload with every reference replaced by the parent's value."""
    if _is_ref(value):
        return lookup(parent, value[PARENT_REF])
    if isinstance(value, dict):
        return {k: resolve(v, parent) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, parent) for v in value]
    return value


def check_follow_ups(catalog: TaskCatalog, then: list[FollowUp], at: Path = ("then",)
                     ) -> list[dict[str, Any]]:
    """Field errors in a chain, as the API reports them (``then.0.payload.to``): unknown
    tasks, and payload errors anywhere except at (or under) a ``$parent`` reference."""
    errors: list[dict[str, Any]] = []
    for i, follow_up in enumerate(then):
        where = (*at, i)
        try:
            task = catalog.get(follow_up.task)
        except UnknownTask as exc:
            errors.append({"field": _dotted((*where, "task")), "message": exc.message,
                           "type": "unknown_task"})
            continue
        refs = list(references(follow_up.payload))
        try:
            task.Payload.model_validate(follow_up.payload)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                if any(loc[:len(ref)] == ref for ref in refs):
                    continue  # decided by the parent's result, checked when it is known
                errors.append({"field": _dotted((*where, "payload", *loc)),
                               "message": err["msg"], "type": err["type"]})
        errors.extend(check_follow_ups(catalog, follow_up.then, (*where, "then")))
    return errors


def children_of(catalog: TaskCatalog, parent: dict[str, Any], then: list[FollowUp]
                ) -> list[tuple[JobSubmission, str, int]]:
    """The parent's follow-ups as ready submissions ``(submission, queue, max_attempts)``;
    ``ChainError`` names the first one that cannot be built."""
    out = []
    for i, follow_up in enumerate(then):
        try:
            task = catalog.get(follow_up.task)
            payload = resolve(follow_up.payload, parent)
            task.Payload.model_validate(payload)
        except ValidationError as exc:
            raise ChainError(f"follow-up {i} ({follow_up.task}): invalid payload: "
                             + "; ".join(f"{_dotted(tuple(e['loc']))}: {e['msg']}"
                                         for e in exc.errors())) from None
        except WorkersError as exc:
            raise ChainError(f"follow-up {i} ({follow_up.task}): {exc.message}") from None
        sub = JobSubmission(
            task=follow_up.task, payload=payload, max_attempts=follow_up.max_attempts,
            correlation_id=(follow_up.correlation_id or parent.get("correlation_id")
                            or parent["id"]),
            then=follow_up.then,
        )
        out.append((sub, task.queue, follow_up.max_attempts or task.retry.max_attempts))
    return out


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)
