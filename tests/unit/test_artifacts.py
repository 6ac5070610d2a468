"""One contract, two artifact stores (Redis and a directory)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from workers_core.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactTooLarge,
    FilesystemArtifactStore,
    artifact_store_from_settings,
)
from workers_core.config import Settings


@pytest.fixture(params=["redis", "filesystem"])
async def artifacts(request: pytest.FixtureRequest, settings: Settings,
                    tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    if request.param == "filesystem":
        yield FilesystemArtifactStore(tmp_path / "artifacts", max_bytes=1024, default_ttl_s=60)
        return
    store = artifact_store_from_settings(settings.model_copy(update={"artifact_max_bytes": 1024}))
    yield store
    await store.redis.aclose()  # type: ignore[attr-defined]


async def test_round_trip_keeps_bytes_type_and_checksum(artifacts: ArtifactStore) -> None:
    data = bytes(range(256)) * 3  # binary, not text
    meta = await artifacts.put(data, "application/pdf", filename="factura.pdf")
    got_meta, got = await artifacts.get(meta.id)
    assert got == data and got_meta == meta
    assert meta.sha256 == hashlib.sha256(data).hexdigest() and meta.size == 768
    assert meta.content_type == "application/pdf" and meta.filename == "factura.pdf"


async def test_over_the_size_cap_is_refused(artifacts: ArtifactStore) -> None:
    with pytest.raises(ArtifactTooLarge):
        await artifacts.put(b"x" * 1025, "application/octet-stream")


@pytest.mark.parametrize("bad_id", ["art_nope", "../../etc/passwd", "art_../x", "wc:job:1"])
async def test_unknown_or_malformed_ids_are_not_found(artifacts: ArtifactStore,
                                                      bad_id: str) -> None:
    with pytest.raises(ArtifactNotFound):
        await artifacts.get(bad_id)


async def test_deleted_is_gone(artifacts: ArtifactStore) -> None:
    meta = await artifacts.put(b"scan", "image/png")
    await artifacts.delete(meta.id)
    with pytest.raises(ArtifactNotFound):
        await artifacts.meta(meta.id)


async def test_expired_is_gone(artifacts: ArtifactStore) -> None:
    meta = await artifacts.put(b"scan", "image/png", ttl_s=1)
    assert meta.expires_at is not None
    import asyncio

    await asyncio.sleep(1.2)
    with pytest.raises(ArtifactNotFound):
        await artifacts.get(meta.id)
