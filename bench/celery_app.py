"""The Celery 5 baseline of ``bench/throughput.py``: one no-op task, Redis broker and backend.

The worker is started by the bench as ``celery -A bench.celery_app worker ...`` from the
repository root; the broker/backend URL comes from ``BENCH_CELERY_URL`` (a private Redis).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

TASK_NAME = "bench.noop"


def make_app(url: str) -> Celery:
    """A Celery app on ``url`` as broker and result backend, Celery's defaults otherwise."""
    app = Celery("bench", broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app


app = make_app(os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/1"))


@app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
def noop(message: str = "", data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The twin of ``debug.echo``: returns its arguments."""
    return {"message": message, "data": data or {}, "attempt": 1}
