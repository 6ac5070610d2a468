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


@pytest.fixture(params=["redis", "filesystem"])
async def roomy(request: pytest.FixtureRequest, settings: Settings,
                tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    """Stores that take 50 MB artifacts."""
    if request.param == "filesystem":
        yield FilesystemArtifactStore(tmp_path / "roomy", max_bytes=50_000_000, default_ttl_s=60)
        return
    store = artifact_store_from_settings(
        settings.model_copy(update={"artifact_max_bytes": 50_000_000}))
    yield store
    await store.redis.aclose()  # type: ignore[attr-defined]


async def test_files_go_in_and_out_in_chunks_with_their_checksum(
        roomy: ArtifactStore, tmp_path: Path) -> None:
    from workers_core.artifacts.store import CHUNK_BYTES

    artifacts = roomy

    source = tmp_path / "d406.xml"
    block = bytes(range(256)) * 4096  # 1 MiB, not a repeat of the chunk size
    with source.open("wb") as handle:
        for n in range(CHUNK_BYTES * 2 // len(block) + 1):  # > 2 chunks
            handle.write(block[n:] + block[:n])
    meta = await artifacts.put_file(source, "application/xml", filename="d406.xml")
    assert meta.size == source.stat().st_size > 2 * CHUNK_BYTES
    assert meta.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    back = tmp_path / "back.xml"
    assert (await artifacts.get_to_file(meta.id, back)).sha256 == meta.sha256
    assert back.read_bytes() == source.read_bytes()
    assert (await artifacts.get(meta.id))[1] == source.read_bytes()  # the same artifact
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    meta = await artifacts.put_file(empty, "text/plain")
    assert (await artifacts.get_to_file(meta.id, tmp_path / "e")).size == 0
    assert (tmp_path / "e").read_bytes() == b""
    with pytest.raises(ArtifactNotFound):
        await artifacts.get_to_file("art_missing", tmp_path / "m")


async def test_a_file_over_the_limit_is_refused_before_any_upload(
        settings: Settings, tmp_path: Path) -> None:
    store = artifact_store_from_settings(settings.model_copy(update={"artifact_max_bytes": 10}))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 11)
    with pytest.raises(ArtifactTooLarge):
        await store.put_file(big, "application/octet-stream")
