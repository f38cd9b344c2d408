"""Dependencies shared by the members routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.members.crypto import PersonalDataVault


async def get_vault(request: Request) -> PersonalDataVault:
    """The process's vault, built from the settings on first use (a bad key fails loudly).

    Async although it never awaits: FastAPI runs a plain `def` dependency in a worker
    thread, a thread hop on every request that reads a member."""
    vault: PersonalDataVault | None = getattr(request.app.state, "vault", None)
    if vault is None:
        vault = PersonalDataVault.from_settings(request.app.state.settings)
        request.app.state.vault = vault
    return vault


VaultDep = Annotated[PersonalDataVault, Depends(get_vault)]
