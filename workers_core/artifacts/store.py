"""Two artifact stores behind one interface: Redis (default) and a filesystem path."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, StringConstraints

from workers_core.config import Settings
from workers_core.errors import JobNotFound, PayloadTooLarge, StoreUnavailable
from workers_core.jobs.keys import RedisKeys
from workers_core.jobs.store import UNAVAILABLE


class ArtifactNotFound(JobNotFound):
    problem_type = "artifact-not-found"


class ArtifactTooLarge(PayloadTooLarge):
    problem_type = "artifact-too-large"


class ArtifactMeta(BaseModel):
    id: str
    content_type: str
    size: int
    sha256: str
    filename: str | None = None
    created_at: datetime
    expires_at: datetime | None = None


class ArtifactStore(Protocol):
    max_bytes: int

    async def put(self, data: bytes, content_type: str, filename: str | None = None,
                  ttl_s: int | None = None) -> ArtifactMeta: ...

    async def get(self, artifact_id: str) -> tuple[ArtifactMeta, bytes]: ...

    async def meta(self, artifact_id: str) -> ArtifactMeta: ...

    async def delete(self, artifact_id: str) -> None: ...

    async def put_file(self, path: Path, content_type: str, filename: str | None = None,
                       ttl_s: int | None = None) -> ArtifactMeta:
        """Store a file in chunks: a 600 MB D406 is never one ``bytes`` in the worker."""
        ...

    async def get_to_file(self, artifact_id: str, path: Path) -> ArtifactMeta:
        """Write an artifact to ``path`` in chunks, checking its size and sha256."""
        ...


CHUNK_BYTES = 4 * 1024 * 1024


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ArtifactTooLarge(f"artifact is over {max_bytes} bytes", max_bytes=max_bytes)


def _file_meta(path: Path, max_bytes: int, content_type: str, filename: str | None,
               ttl_s: int | None) -> ArtifactMeta:
    size = path.stat().st_size
    _check_size(size, max_bytes)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return _new_meta(size, digest.hexdigest(), content_type, filename, ttl_s)


def _new_meta(size: int, sha256: str, content_type: str, filename: str | None,
              ttl_s: int | None) -> ArtifactMeta:
    now = time.time()
    return ArtifactMeta(
        id="art_" + secrets.token_hex(12),
        content_type=content_type or "application/octet-stream",
        size=size,
        sha256=sha256,
        filename=filename,
        created_at=datetime.fromtimestamp(now, UTC),
        expires_at=datetime.fromtimestamp(now + ttl_s, UTC) if ttl_s else None,
    )


# How payloads name an artifact: checked at the door (422), the same rule as ``_check_id``.
ArtifactId = Annotated[str, StringConstraints(pattern=r"^art_[0-9A-Za-z]{1,60}$")]


def _check_id(artifact_id: str) -> str:
    # Ids are ours ("art_" + hex); anything else is refused before it reaches a key or a path.
    if not (artifact_id.startswith("art_") and artifact_id[4:].isalnum()
            and len(artifact_id) <= 64):
        raise ArtifactNotFound(f"no artifact {artifact_id!r}")
    return artifact_id


class RedisArtifactStore:
    """Blob and metadata as two keys with the same TTL (binary-safe client)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, max_bytes: int,
                 default_ttl_s: int) -> None:
        self.redis: Any = redis
        self.keys = RedisKeys(prefix)
        self.max_bytes = max_bytes
        self.default_ttl_s = default_ttl_s

    def _keys(self, artifact_id: str) -> tuple[str, str]:
        base = self.keys.artifact(_check_id(artifact_id))
        return base + ":data", base + ":meta"

    async def put(self, data: bytes, content_type: str, filename: str | None = None,
                  ttl_s: int | None = None) -> ArtifactMeta:
        _check_size(len(data), self.max_bytes)
        ttl = ttl_s or self.default_ttl_s
        meta = _new_meta(len(data), hashlib.sha256(data).hexdigest(), content_type, filename, ttl)
        data_key, meta_key = self._keys(meta.id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(data_key, data, ex=ttl)
                pipe.set(meta_key, meta.model_dump_json(), ex=ttl)
                await pipe.execute()
        except UNAVAILABLE as exc:
            raise StoreUnavailable("Redis is unreachable") from exc
        return meta

    async def meta(self, artifact_id: str) -> ArtifactMeta:
        _, meta_key = self._keys(artifact_id)
        try:
            raw = await self.redis.get(meta_key)
        except UNAVAILABLE as exc:
            raise StoreUnavailable("Redis is unreachable") from exc
        if raw is None:
            raise ArtifactNotFound(f"no artifact {artifact_id!r} (unknown or expired)")
        return ArtifactMeta.model_validate_json(raw)

    async def get(self, artifact_id: str) -> tuple[ArtifactMeta, bytes]:
        data_key, meta_key = self._keys(artifact_id)
        try:
            raw_meta, data = await self.redis.mget(meta_key, data_key)
        except UNAVAILABLE as exc:
            raise StoreUnavailable("Redis is unreachable") from exc
        if raw_meta is None or data is None:
            raise ArtifactNotFound(f"no artifact {artifact_id!r} (unknown or expired)")
        return ArtifactMeta.model_validate_json(raw_meta), bytes(data)

    async def delete(self, artifact_id: str) -> None:
        await self.redis.delete(*self._keys(artifact_id))

    async def put_file(self, path: Path, content_type: str, filename: str | None = None,
                       ttl_s: int | None = None) -> ArtifactMeta:
        """APPEND chunks to a partial key, then RENAME it and write the meta in one step, so
        readers never see a partial artifact; a failed upload's partial key expires."""
        ttl = ttl_s or self.default_ttl_s
        meta = await asyncio.to_thread(_file_meta, path, self.max_bytes, content_type,
                                       filename, ttl)
        data_key, meta_key = self._keys(meta.id)
        partial = f"{data_key}:partial"
        try:
            with path.open("rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.append(partial, chunk)
                        pipe.expire(partial, 3600)
                        await pipe.execute()
            async with self.redis.pipeline(transaction=True) as pipe:
                if meta.size:
                    pipe.rename(partial, data_key)
                else:
                    pipe.set(data_key, b"")
                pipe.expire(data_key, ttl)
                pipe.set(meta_key, meta.model_dump_json(), ex=ttl)
                await pipe.execute()
        except UNAVAILABLE as exc:
            raise StoreUnavailable("Redis is unreachable") from exc
        return meta

    async def get_to_file(self, artifact_id: str, path: Path) -> ArtifactMeta:
        """GETRANGE a chunk at a time; an artifact that expires half-way is not found."""
        meta = await self.meta(artifact_id)
        data_key, _ = self._keys(artifact_id)
        digest, written = hashlib.sha256(), 0
        try:
            with path.open("wb") as handle:
                while written < meta.size:
                    chunk = bytes(await self.redis.getrange(
                        data_key, written, min(written + CHUNK_BYTES, meta.size) - 1))
                    if not chunk:
                        raise ArtifactNotFound(f"artifact {artifact_id!r} expired while read")
                    digest.update(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                    written += len(chunk)
        except UNAVAILABLE as exc:
            raise StoreUnavailable("Redis is unreachable") from exc
        if digest.hexdigest() != meta.sha256:
            raise ArtifactNotFound(f"artifact {artifact_id!r} changed while read")
        return meta


class FilesystemArtifactStore:
    """A directory shared by every node (NFS, a mounted volume): ``<id>`` + ``<id>.json``."""

    def __init__(self, root: Path, max_bytes: int, default_ttl_s: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.default_ttl_s = default_ttl_s

    def _paths(self, artifact_id: str) -> tuple[Path, Path]:
        base = self.root / _check_id(artifact_id)
        return base, base.with_suffix(".json")

    async def put(self, data: bytes, content_type: str, filename: str | None = None,
                  ttl_s: int | None = None) -> ArtifactMeta:
        _check_size(len(data), self.max_bytes)
        meta = _new_meta(len(data), hashlib.sha256(data).hexdigest(), content_type, filename,
                         ttl_s or self.default_ttl_s)
        await asyncio.to_thread(self._write, meta, lambda tmp: tmp.write_bytes(data))
        return meta

    def _write(self, meta: ArtifactMeta, fill: Callable[[Path], object]) -> None:
        """The data (``fill`` writes it to a temporary path), then the meta."""
        self.root.mkdir(parents=True, exist_ok=True)
        data_path, meta_path = self._paths(meta.id)
        body = meta.model_dump_json().encode()
        for path, write in ((data_path, fill), (meta_path, lambda tmp: tmp.write_bytes(body))):
            tmp = path.with_name(path.name + ".tmp")
            write(tmp)
            os.replace(tmp, path)  # readers never see half a file

    async def meta(self, artifact_id: str) -> ArtifactMeta:
        _, meta_path = self._paths(artifact_id)
        try:
            meta = ArtifactMeta.model_validate_json(await asyncio.to_thread(meta_path.read_bytes))
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {artifact_id!r}") from None
        if meta.expires_at and meta.expires_at < datetime.now(UTC):
            await self.delete(artifact_id)
            raise ArtifactNotFound(f"artifact {artifact_id!r} expired")
        return meta

    async def get(self, artifact_id: str) -> tuple[ArtifactMeta, bytes]:
        meta = await self.meta(artifact_id)
        data_path, _ = self._paths(artifact_id)
        try:
            return meta, await asyncio.to_thread(data_path.read_bytes)
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {artifact_id!r}") from None

    async def delete(self, artifact_id: str) -> None:
        for path in self._paths(artifact_id):
            path.unlink(missing_ok=True)

    async def put_file(self, path: Path, content_type: str, filename: str | None = None,
                       ttl_s: int | None = None) -> ArtifactMeta:
        meta = await asyncio.to_thread(_file_meta, path, self.max_bytes, content_type,
                                       filename, ttl_s or self.default_ttl_s)
        await asyncio.to_thread(self._write, meta, lambda tmp: shutil.copyfile(path, tmp))
        return meta

    async def get_to_file(self, artifact_id: str, path: Path) -> ArtifactMeta:
        meta = await self.meta(artifact_id)
        data_path, _ = self._paths(artifact_id)
        try:
            await asyncio.to_thread(shutil.copyfile, data_path, path)
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {artifact_id!r}") from None
        return meta


def artifact_store_from_settings(settings: Settings) -> ArtifactStore:
    if settings.artifact_dir is not None:
        return FilesystemArtifactStore(settings.artifact_dir, settings.artifact_max_bytes,
                                       settings.artifact_ttl_s)
    kwargs = {**settings.redis_kwargs(), "decode_responses": False}
    client = aioredis.from_url(settings.redis_url, **kwargs)
    return RedisArtifactStore(client, settings.redis_prefix, settings.artifact_max_bytes,
                              settings.artifact_ttl_s)


