"""`GET /v1/members/{id}/export`: everything every service holds about a member, in one piece.

Each service answers its own `/internal/members/{id}/export`; the gateway reads the four at
once, as the caller (admin, or the member), within the upstream timeout. An export is
evidence for a data-protection request, so it is whole or nothing: members not knowing the
member is a 404, and any other part that fails fails the export (503 when a service cannot
be reached or answers too late, 502 when it answers wrongly), never a partial document.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

from services.common.db import utcnow
from services.common.problems import NotFound, ServiceUnavailable
from services.common.settings import ServiceName
from services.gateway.compose.parts import Part, PartFailed, PartRefused, Upstream
from services.gateway.compose.schemas import MemberExportRead, ServiceExport
from services.gateway.proxy import BadGateway

EXPORTING_SERVICES: tuple[ServiceName, ...] = ("members", "content", "rewards", "feedback")
RETRY_AFTER_SECONDS = "5"
ZIP_MEDIA_TYPE = "application/zip"


async def member_export(upstream: Upstream, member_id: uuid.UUID, timeout: float) -> MemberExportRead:
    parts: dict[str, Part] = {s: Part(s, f"/internal/members/{member_id}/export") for s in EXPORTING_SERVICES}
    results = await upstream.gather(parts, timeout)
    members_error = results.errors.get("members")
    if isinstance(members_error, PartRefused) and members_error.status_code == 404:
        raise NotFound("No such member.")
    failed = sorted(name for name, e in results.errors.items() if isinstance(e, PartFailed) and e.unavailable)
    if failed:
        raise ServiceUnavailable(
            f"The export needs every service; {', '.join(failed)} did not answer. Try again shortly.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
            services=failed,
        )
    broken = sorted(results.errors)
    if broken:
        raise BadGateway(f"The export needs every service; {', '.join(broken)} gave no valid answer.", services=broken)
    return MemberExportRead(
        member_id=member_id,
        exported_at=utcnow(),
        services={service: ServiceExport.model_validate(results.values[service]) for service in EXPORTING_SERVICES},
    )


def export_zip(export: MemberExportRead) -> bytes:
    """The export as a ZIP archive: one JSON file per service (`members.json`, ...)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for service, part in export.services.items():
            document: dict[str, Any] = part.model_dump(mode="json")
            archive.writestr(f"{service}.json", json.dumps(document, ensure_ascii=False, indent=2))
    return buffer.getvalue()


def wants_zip(accept: str | None) -> bool:
    """True when the caller asked for a ZIP (`Accept: application/zip`) rather than JSON."""
    if not accept:
        return False
    kinds = [item.split(";")[0].strip().lower() for item in accept.split(",")]
    return ZIP_MEDIA_TYPE in kinds and "application/json" not in kinds[: kinds.index(ZIP_MEDIA_TYPE)]
