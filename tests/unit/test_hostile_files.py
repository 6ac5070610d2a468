"""Hostile files into OCR and the artifact store: corrupt PNG/JPEG/TIFF/PDF, decompression
bombs, 0-byte and oversized uploads. Each ends in a typed, non-retryable error naming the
problem, and the same OCR task instance (one replica) then still reads a good page.
"""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from PIL import Image

from tests.unit import ocr_pages
from tests.unit.ocr_pages import ocr
from workers_core.artifacts import artifact_store_from_settings
from workers_core.artifacts.store import ArtifactTooLarge
from workers_core.config import Settings
from workers_core.deployments.api import GatewayState, create_api
from workers_core.deployments.completion import CompletionWaiter
from workers_core.errors import NonRetryable
from workers_core.jobs.store import JobStore
from workers_core.local.redis_server import RedisServer
from workers_core.ocr import TooManyPages, UnreadableDocument, UnsupportedDocument
from workers_core.tasks.ocr import OcrExtract
from workers_core.tasks.registry import TaskCatalog

pytestmark = pytest.mark.slow  # the OCR engine loads once for the module (a few seconds)

MAX_BYTES = 2 * 1024 * 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def png_bomb() -> bytes:
    """20k x 20k pixels of zeros: ~1.2 GB decoded, a few hundred KB on the wire. Pillow's
    bomb check must refuse it before decoding."""
    width, height = 20_000, 20_000
    row = b"\x00" + b"\x00" * width * 3
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return png_declaring(width, height, body)


def good_png() -> bytes:
    return ocr_pages.png(ocr_pages.render(ocr_pages.short_page("Factura 153")))


def image_bytes(fmt: str, size: tuple[int, int] = (400, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, fmt)
    return buf.getvalue()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose SOF0 frame header is rewritten to claim ``width`` x ``height``."""
    data = bytearray(image_bytes("JPEG"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def tiff_declaring(width: int, height: int) -> bytes:
    data = bytearray(image_bytes("TIFF"))
    for tag, value in ((256, width), (257, height)):  # ImageWidth, ImageLength
        at = data.find(struct.pack("<HH", tag, 3)) if data[:2] == b"II" else -1
        if at < 0:
            at = data.find(struct.pack("<HH", tag, 4))
            struct.pack_into("<HHII", data, at, tag, 4, 1, value)
        else:
            struct.pack_into("<HHIHH", data, at, tag, 3, 1, min(value, 65535), 0)
    return bytes(data)


def pdf_of(objs: list[bytes]) -> bytes:
    """A PDF file of these objects (numbered from 1, the catalog first) with a true xref."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def pdf_with(content: bytes, media_box: str = "0 0 595 842", filter_: bool = True) -> bytes:
    stream = zlib.compress(content, 9) if filter_ else content
    flt = b"/Filter /FlateDecode " if filter_ else b""
    return pdf_of([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [{media_box}] /Contents 4 0 R >>".encode(),
        b"<< " + flt + b"/Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
        + b"\nendstream",
    ])


def many_pages_pdf(pages: int) -> bytes:
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    return pdf_of([b"<< /Type /Catalog /Pages 2 0 R >>",
                   f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
                   *[b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"] * pages])


# name -> (bytes, declared content type, the error it must end in; None = may succeed)
CASES: dict[str, tuple[Callable[[], bytes], str, type[Exception] | None]] = {
    "zero-bytes": (lambda: b"", "image/png", UnsupportedDocument),
    "text-as-png": (lambda: b"just some text, no image", "image/png", UnsupportedDocument),
    "html-as-pdf": (lambda: b"<html><body>x</body></html>", "application/pdf",
                    UnsupportedDocument),
    "png-signature-only": (lambda: b"\x89PNG\r\n\x1a\n", "image/png", UnreadableDocument),
    "png-truncated": (lambda: good_png()[:2000], "image/png", UnreadableDocument),
    "png-bad-crc": (lambda: good_png()[:29] + b"\0\0\0\0" + good_png()[33:], "image/png",
                    UnreadableDocument),
    "png-zero-size": (lambda: png_declaring(0, 0), "image/png", UnreadableDocument),
    "png-bomb-100k-x-100k": (lambda: png_declaring(100_000, 100_000), "image/png",
                             UnreadableDocument),
    "png-bomb-20k-x-20k-real-data": (png_bomb, "image/png", UnreadableDocument),
    # 100 MP: where Pillow only warns and decodes; refused from the header by our limit.
    "png-100mp-pillow-warning-band": (lambda: png_declaring(10_000, 10_000), "image/png",
                                      UnreadableDocument),
    "jpeg-truncated": (lambda: image_bytes("JPEG")[:300], "image/jpeg", UnreadableDocument),
    "jpeg-soi-then-junk": (lambda: b"\xff\xd8\xff" + b"\x13" * 500, "image/jpeg",
                           UnreadableDocument),
    "jpeg-bomb-65k-x-65k": (lambda: jpeg_declaring(65_000, 65_000), "image/jpeg",
                            UnreadableDocument),
    "tiff-header-then-junk": (lambda: b"II*\x00" + b"\xff" * 200, "image/tiff",
                              UnreadableDocument),
    "tiff-truncated": (lambda: image_bytes("TIFF")[:120], "image/tiff", UnreadableDocument),
    "tiff-bomb": (lambda: tiff_declaring(200_000, 200_000), "image/tiff", UnreadableDocument),
    "pdf-header-then-junk": (lambda: b"%PDF-1.7\n" + b"\x00\xff" * 300, "application/pdf",
                             UnreadableDocument),
    "pdf-truncated": (lambda: pdf_with(b"BT ET")[:60], "application/pdf", UnreadableDocument),
    "pdf-encrypted-marker": (lambda: pdf_with(b"").replace(
        b"/Root 1 0 R", b"/Root 1 0 R /Encrypt << /Filter /Standard /V 9 /R 9 >>"),
        "application/pdf", UnreadableDocument),
    "pdf-stream-bomb-200mb": (lambda: pdf_with(b" " * 200_000_000), "application/pdf", None),
    "pdf-huge-mediabox": (lambda: pdf_with(b"", "0 0 14400 14400"), "application/pdf", None),
    "pdf-too-many-pages": (lambda: many_pages_pdf(500), "application/pdf", TooManyPages),
}


@pytest.fixture(scope="module")
def ocr_settings(redis_server: RedisServer) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_server.url,
        redis_prefix=f"t{uuid.uuid4().hex[:10]}",
        ocr_dpi=ocr_pages.DPI,
        ocr_max_pages=3,
        artifact_max_bytes=MAX_BYTES,
    )


@pytest.fixture(scope="module")
async def task(ocr_settings: Settings) -> AsyncIterator[OcrExtract]:
    t = OcrExtract(ocr_settings)
    await t.setup()
    yield t
    await t.close()


# Pillow warns (UserWarning) on corrupt TIFF tags and reads on; here as in production.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_file_ends_in_a_typed_error_and_the_replica_reads_on(
        task: OcrExtract, case: str) -> None:
    build, content_type, expect = CASES[case]
    try:
        result = await ocr(task, build(), content_type)
    except NonRetryable as exc:
        assert expect is not None, f"{case}: {type(exc).__name__}: {exc}"
        assert isinstance(exc, expect), f"{case}: {type(exc).__name__}: {exc}"
        assert exc.message.strip()
    else:
        assert expect is None, f"{case} was read: {result.text!r}"[:300]
    good = await ocr(task, good_png(), "image/png")  # the same instance, right after
    assert "153" in good.text


async def test_an_oversized_artifact_is_refused_before_ocr(task: OcrExtract) -> None:
    with pytest.raises(ArtifactTooLarge, match=f"over {MAX_BYTES} bytes") as caught:
        await ocr(task, b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_BYTES, "image/png")
    assert caught.value.status_code == 413 and not caught.value.retryable


@pytest.fixture
async def gateway(ocr_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    store = JobStore.from_settings(ocr_settings)
    app = create_api(GatewayState(
        settings=ocr_settings, store=store, catalog=TaskCatalog.discover(),
        waiter=CompletionWaiter(store.redis, store.keys.done_channel),
        artifacts=artifact_store_from_settings(ocr_settings)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as http:
        yield http
    await store.close()


@pytest.mark.parametrize(("how", "size", "status"), [
    ("raw", 0, 201),
    ("multipart", 0, 201),
    ("raw", MAX_BYTES, 201),
    ("raw", MAX_BYTES + 1, 413),
    ("multipart", MAX_BYTES + 1, 413),
])
async def test_uploads_at_and_past_the_limit(
        gateway: httpx.AsyncClient, how: str, size: int, status: int) -> None:
    data = b"\0" * size
    if how == "raw":
        resp = await gateway.post("/v1/artifacts", content=data,
                                  headers={"Content-Type": "image/png"})
    else:
        resp = await gateway.post("/v1/artifacts", files={"file": ("scan.png", data)})
    assert resp.status_code == status, resp.text[:300]
    if status == 413:
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["detail"]
    else:
        assert resp.json()["size"] == size


async def test_a_multipart_upload_without_a_file_names_the_field(
        gateway: httpx.AsyncClient) -> None:
    resp = await gateway.post("/v1/artifacts", data={"other": "x"},
                              files={"notfile": ("a", b"x")})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "file"


@pytest.mark.parametrize("how", ["raw", "multipart"])
async def test_a_body_past_the_routes_own_limit_is_a_problem_too(
        gateway: httpx.AsyncClient, how: str) -> None:
    data = b"\0" * (MAX_BYTES + 70_000)
    if how == "raw":
        resp = await gateway.post("/v1/artifacts", content=data)
    else:
        resp = await gateway.post("/v1/artifacts", files={"file": ("scan.png", data)})
    assert resp.status_code == 413
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_a_page_over_the_pixel_limit_is_refused_even_where_pillow_only_warns() -> None:
    import warnings

    from workers_core.ocr.pages import ImagePages

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in production: Pillow warns and would decode
        with pytest.raises(UnreadableDocument, match=r"10000x10000 pixels, over the 60 "):
            ImagePages(png_declaring(10_000, 10_000), "image/png", 300)
