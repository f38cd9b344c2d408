"""Content's own metrics: posts by status (read before each scrape), permits granted and refused."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.common.db import Database
from services.common.observability import Metrics
from services.content.posts.models import POST_STATUSES
from services.content.posts.service import counts_by_status


class ContentMetrics:
    def __init__(self, metrics: Metrics, db: Database) -> None:
        self.db = db
        self.posts = Gauge("qunyun_content_posts", "Posts by status", ["status"], registry=metrics.registry)
        self.permits_granted = Counter(
            "qunyun_content_permits_granted_total", "Contact permits granted", ["kind"], registry=metrics.registry
        )
        self.permits_refused = Counter(
            "qunyun_content_permits_refused_total",
            "Contact permits refused, by problem type",
            ["reason"],
            registry=metrics.registry,
        )
        metrics.refreshers.append(self.refresh)

    async def refresh(self) -> None:
        async with self.db.session() as session:
            counts = await counts_by_status(session)
        for status in POST_STATUSES:
            self.posts.labels(status=status).set(counts.get(status, 0))
