"""The one base for background work (relays, webhook delivery, expiry, schedulers,
housekeeping): a queue table claimed with a lease and `SKIP LOCKED` (`JobQueue`), an
explicit status, backoff with jitter (`Backoff`), per-job metrics (`JobMetrics`), wake-up
after commit (`wake_after_commit` / `Database.on_commit`), a periodic runner
(`PeriodicJob`, optionally claimed per interval with `RunClaim`), the batch loop and
depth of rows that fall due in place (`drain_due`, `due_depth`: the publisher, expiry) and
the purges (`Housekeeping`).

Never hold a row lock across a network call: claim in a short transaction, commit, then
work; record the outcome guarded by the claim token.
"""

from services.common.db import wake_after_commit
from services.common.jobs.backoff import Backoff, backoff_seconds
from services.common.jobs.batches import BatchStep, drain_due, due_depth
from services.common.jobs.housekeeping import Housekeeping, Purge, kit_purges, older_than
from services.common.jobs.metrics import JobMetrics
from services.common.jobs.periodic import PeriodicJob, RunClaim
from services.common.jobs.queue import (
    DONE,
    FAILED,
    IN_FLIGHT,
    PARKED,
    PENDING,
    Claim,
    JobQueue,
    QueueDepth,
    job_columns,
    status_check,
)

__all__ = [
    "DONE",
    "FAILED",
    "IN_FLIGHT",
    "PARKED",
    "PENDING",
    "Backoff",
    "BatchStep",
    "Claim",
    "Housekeeping",
    "JobMetrics",
    "JobQueue",
    "PeriodicJob",
    "Purge",
    "QueueDepth",
    "RunClaim",
    "backoff_seconds",
    "drain_due",
    "due_depth",
    "job_columns",
    "kit_purges",
    "older_than",
    "status_check",
    "wake_after_commit",
]
