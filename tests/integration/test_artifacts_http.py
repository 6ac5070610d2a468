"""POST /v1/artifacts and GET /v1/artifacts/{id} through the real gateway."""

from __future__ import annotations

import hashlib

from tests.integration.conftest import Platform


def test_multipart_upload_and_download(platform: Platform) -> None:
    scan = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 400  # 100 KiB: over the JSON body limit
    resp = platform.http.post("/v1/artifacts",
                              files={"file": ("scan.png", scan, "image/png")})
    assert resp.status_code == 201, resp.text
    meta = resp.json()
    assert meta["size"] == len(scan) and meta["sha256"] == hashlib.sha256(scan).hexdigest()
    got = platform.http.get(f"/v1/artifacts/{meta['id']}")
    assert got.status_code == 200 and got.content == scan
    assert got.headers["content-type"] == "image/png"
    assert got.headers["etag"] == f'"{meta["sha256"]}"'


def test_raw_body_upload_keeps_its_content_type(platform: Platform) -> None:
    resp = platform.http.post("/v1/artifacts", content=b"<Invoice/>",
                              headers={"Content-Type": "application/xml"})
    assert resp.status_code == 201
    meta = platform.http.get(f"/v1/artifacts/{resp.json()['id']}/meta").json()
    assert meta["content_type"] == "application/xml" and meta["size"] == 10


def test_oversized_artifact_is_413(platform: Platform) -> None:
    big = b"x" * (platform.settings.artifact_max_bytes + 1)
    resp = platform.http.post("/v1/artifacts", content=big,
                              headers={"Content-Type": "application/pdf"})
    assert resp.status_code == 413


def test_unknown_artifact_is_404_problem(platform: Platform) -> None:
    resp = platform.http.get("/v1/artifacts/art_doesnotexist")
    assert resp.status_code == 404
    assert resp.json()["type"].endswith("/artifact-not-found")
