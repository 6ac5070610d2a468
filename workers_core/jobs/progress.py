"""Job progress: long jobs (a 10,000-CUI lookup, a 500-page OCR) say how far they are.

The consumer gives each job a ``ProgressRecorder`` (``ctx.report_progress``); the gateway
reads the same hash with ``JobStore.get(job_id, with_progress=True)`` for
``GET /v1/jobs/{id}``, in the job's own round trip.
"""

from __future__ import annotations

import time
from typing import Any

from workers_core.jobs.keys import RedisKeys


class ProgressRecorder:
    """Writes ``done``/``total``/``updated_at`` to ``{prefix}:progress:<job id>``, kept as long
    as the job's result. Tasks call it through ``JobContext.report_progress``."""

    def __init__(self, redis: Any, keys: RedisKeys, job_id: str, ttl_s: int) -> None:
        self.redis = redis
        self.key = keys.progress(job_id)
        self.ttl_s = ttl_s

    async def __call__(self, done: int, total: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key, mapping={"done": done, "total": total, "updated_at": time.time()})
        pipe.expire(self.key, self.ttl_s)
        await pipe.execute()
