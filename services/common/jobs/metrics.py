"""Per-job Prometheus metrics: depth, age of the oldest due item, attempts, failures.

Labels are the service and the job's name only (a handful per process), never an id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.common.jobs.queue import QueueDepth
from services.common.observability import Metrics


class JobMetrics:
    """One job's view of the process registry; does nothing without one (tests, tools)."""

    def __init__(self, metrics: Metrics | None, job: str) -> None:
        self.metrics = metrics
        self.job = job

    def attempted(self, count: int = 1) -> None:
        if self.metrics is not None and count:
            self.metrics.job_attempts.labels(self.metrics.service, self.job).inc(count)

    def failed(self, count: int = 1) -> None:
        if self.metrics is not None and count:
            self.metrics.job_failures.labels(self.metrics.service, self.job).inc(count)

    def set_depth(self, depth: QueueDepth) -> None:
        if self.metrics is not None:
            self.metrics.job_depth.labels(self.metrics.service, self.job).set(depth.depth)
            self.metrics.job_oldest_due.labels(self.metrics.service, self.job).set(depth.oldest_due_seconds)

    def watch(self, probe: Callable[[], Awaitable[QueueDepth]]) -> None:
        """Refresh depth and age from `probe` before every scrape."""
        if self.metrics is None:
            return

        async def refresh() -> None:
            self.set_depth(await probe())

        self.metrics.refreshers.append(refresh)
