"""Artifacts: binaries (scans, PDFs, XML files) kept beside jobs, never inside a stream entry.

Jobs reference artifacts by id. ``ArtifactStore`` is the seam: Redis for small blobs (the
default), a filesystem path for a shared volume; S3-compatible storage fits the same
interface.
"""

from workers_core.artifacts.store import (
    ArtifactId,
    ArtifactMeta,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactTooLarge,
    FilesystemArtifactStore,
    RedisArtifactStore,
    artifact_store_from_settings,
)

__all__ = [
    "ArtifactId",
    "ArtifactMeta",
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactTooLarge",
    "FilesystemArtifactStore",
    "RedisArtifactStore",
    "artifact_store_from_settings",
]
