"""pdf.render against Debian's Chromium and real Redis: output, options, lifecycle, isolation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
from PIL import Image
from playwright.async_api import Error as PlaywrightError

from workers_core.artifacts import artifact_store_from_settings
from workers_core.config import Settings
from workers_core.errors import NonRetryable
from workers_core.integrations.chromium import (
    BrowserCrashed,
    ChromiumNotFound,
    RenderFailed,
    RenderTimeout,
)
from workers_core.integrations.netguard import BlockedUrl
from workers_core.local.redis_server import RedisServer
from workers_core.tasks.base import JobContext
from workers_core.tasks.pdf import DOCUMENT_URL, PdfPayload, PdfResult, RenderPdf

INVOICE = """<!doctype html><html lang="ro"><head><meta charset="utf-8"><title>Factura</title>
<style>body{font-family:"DejaVu Sans",sans-serif;font-size:11pt} table{border-collapse:collapse;
width:100%} td,th{border:1px solid #444;padding:4px} .total{font-weight:bold}</style></head><body>
<h1>Factură fiscală nr. FCT-153</h1>
<p>Furnizor: Țesătoria Șercaia SRL, Brașov · Cumpărător: Întreprinderea Ăsta Îți Știe SA, Iași</p>
<table><tr><th>Denumire</th><th>Cantitate</th><th>Preț unitar</th><th>Valoare</th></tr>
<tr><td>Pânză de în</td><td>10</td><td>50,00</td><td>500,00</td></tr>
<tr><td>Ață de mătase</td><td>5</td><td>100,00</td><td>500,00</td></tr>
<tr><td colspan="3">TVA 19%</td><td>190,00</td></tr>
<tr class="total"><td colspan="3">Total de plată</td><td>1.190,00 lei</td></tr></table>
<p>Mulțumim că ați ales produsele românești: ș ț ă î â Ș Ț Ă Î Â</p></body></html>"""
PAGE_BREAK = '<div style="break-after:page">{}</div>'
PASSWD = Path("/etc/passwd").read_text()


def pdf_settings(redis_server: RedisServer, **changes: Any) -> Settings:
    return Settings(
        _env_file=None, redis_url=redis_server.url, redis_prefix=f"t{uuid.uuid4().hex[:10]}",
        # Loopback names on the allowlist: they must be refused all the same.
        **{"pdf_allowed_hosts": ["localhost", "127.0.0.1"], "pdf_render_timeout_s": 20,
           **changes})


@pytest.fixture(scope="module")
async def renderer(redis_server: RedisServer) -> AsyncIterator[RenderPdf]:
    task = RenderPdf(pdf_settings(redis_server))
    await task.setup()
    yield task
    await task.close()


@pytest.fixture(scope="module")
async def limited(redis_server: RedisServer) -> AsyncIterator[RenderPdf]:
    """Small limits: a restart every 2 jobs, 2 pages at most, 5 s per render."""
    task = RenderPdf(pdf_settings(redis_server, pdf_restart_after_jobs=2, pdf_max_pages=2,
                                  pdf_render_timeout_s=5))
    await task.setup()
    yield task
    await task.close()


def context(task: RenderPdf) -> JobContext:
    return JobContext(job_id=f"job-pdf-{uuid.uuid4().hex[:8]}", task="pdf.render",
                      queue="pdf.render", attempt=1, max_attempts=3, correlation_id=None,
                      settings=task.settings, artifacts=artifact_store_from_settings(task.settings))


async def render(task: RenderPdf, **payload: Any) -> tuple[PdfResult, Any]:
    ctx = context(task)
    result = await task.run(PdfPayload.model_validate(payload), ctx)
    meta, data = await ctx.artifacts.get(result.artifact_id)
    assert meta.content_type == "application/pdf" and data.startswith(b"%PDF-")
    assert meta.size == result.size_bytes == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    return result, pdfium.PdfDocument(data)


def text_of(document: Any) -> str:
    return "\n".join(str(page.get_textpage().get_text_range()) for page in document)


def red_pixels(document: Any) -> int:
    image = document[0].render(scale=0.5).to_pil().convert("RGB")
    return sum(1 for r, g, b in image.getdata() if r > 180 and g < 80 and b < 80)


def red_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (220, 0, 0)).save(out, format="PNG")
    return out.getvalue()


async def put_png(task: RenderPdf) -> str:
    meta = await context(task).artifacts.put(red_png(), "image/png", filename="logo.png")
    return str(meta.id)


# -- documents and options ------------------------------------------------------------------


async def test_a_romanian_invoice_keeps_its_diacritics_table_and_total(
        renderer: RenderPdf) -> None:
    result, pdf = await render(renderer, html=INVOICE, filename="factură-153.pdf")
    text = text_of(pdf)
    assert result.pages == len(pdf) == 1 and result.filename == "factură-153.pdf"
    for expected in ("Factură fiscală nr. FCT-153", "Țesătoria Șercaia SRL, Brașov",
                     "Întreprinderea Ăsta Îți Știe SA, Iași", "Pânză de în", "Ață de mătase",
                     "Total de plată", "1.190,00 lei", "ș ț ă î â Ș Ț Ă Î Â"):
        assert expected in text
    width, height = pdf[0].get_size()
    assert (round(width), round(height)) == (596, 843)  # A4 in points by default
    assert result.blocked_requests == []


async def test_landscape_and_custom_sizes_change_the_page(renderer: RenderPdf) -> None:
    _, landscape = await render(renderer, html=INVOICE, landscape=True)
    width, height = landscape[0].get_size()
    assert width > height and round(width) == 843
    _, letter = await render(renderer, html="<p>x</p>", paper_format="Letter")
    assert tuple(map(round, letter[0].get_size())) == (612, 792)
    _, ticket = await render(renderer, html="<p>x</p>", width="10cm", height="5cm",
                             margin={"top": "0mm", "right": "0mm", "bottom": "0mm", "left": "0mm"})
    width, height = ticket[0].get_size()
    assert width == pytest.approx(283.5, abs=1) and height == pytest.approx(141.7, abs=1)


async def test_page_ranges_keep_only_the_requested_pages(renderer: RenderPdf) -> None:
    html = "".join(PAGE_BREAK.format(f"Pagina {n}") for n in (1, 2, 3))
    result, _ = await render(renderer, html=html)
    assert result.pages == 3
    result, part = await render(renderer, html=html, page_ranges="2-3")
    assert result.pages == 2 and "Pagina 1" not in text_of(part) and "Pagina 3" in text_of(part)
    with pytest.raises(RenderFailed, match="exceeds page count"):
        await render(renderer, html=html, page_ranges="7")


async def test_header_and_footer_templates_are_printed_on_every_page(renderer: RenderPdf) -> None:
    html = "".join(PAGE_BREAK.format(f"Pagina {n}") for n in (1, 2))
    _, pdf = await render(
        renderer, html=html, margin={"top": "2cm", "bottom": "2cm", "left": "1cm", "right": "1cm"},
        header_template='<div style="font-size:10px">Antet SRL</div>',
        footer_template='<div style="font-size:10px">Pagina <span class="pageNumber"></span> din '
                        '<span class="totalPages"></span></div>')
    pages = [page.get_textpage().get_text_range() for page in pdf]
    assert all("Antet SRL" in text for text in pages)
    assert "Pagina 1 din 2" in pages[0] and "Pagina 2 din 2" in pages[1]


async def test_screen_media_is_emulated_only_when_asked(renderer: RenderPdf) -> None:
    html = ("<style>@media print{.screen{display:none}} @media screen{.print{display:none}}"
            "</style><p class=screen>doar pe ecran</p><p class=print>doar la tipar</p>")
    _, printed = await render(renderer, html=html)
    _, screen = await render(renderer, html=html, emulated_media="screen")
    assert "doar la tipar" in text_of(printed) and "doar pe ecran" not in text_of(printed)
    assert "doar pe ecran" in text_of(screen) and "doar la tipar" not in text_of(screen)


async def test_a_data_url_image_is_drawn(renderer: RenderPdf) -> None:
    import base64

    src = "data:image/png;base64," + base64.b64encode(red_png()).decode()
    _, with_image = await render(renderer, html=f'<img src="{src}" width="300" height="300">')
    _, without = await render(renderer, html='<div style="width:300px;height:300px"></div>')
    assert red_pixels(with_image) > 10_000 and red_pixels(without) == 0


async def test_listed_asset_artifacts_are_served_and_unlisted_ones_are_not(
        renderer: RenderPdf) -> None:
    listed, unlisted = await put_png(renderer), await put_png(renderer)
    result, pdf = await render(
        renderer, assets=[listed],
        html=f'<img src="{listed}" width="300" height="300">'
             f'<img src="{DOCUMENT_URL}{unlisted}" width="300" height="300">')
    assert red_pixels(pdf) > 10_000
    [blocked] = result.blocked_requests
    assert unlisted in blocked and "not in the job's assets" in blocked
    _, only_unlisted = await render(renderer, html=f'<img src="{unlisted}" width="300">')
    assert red_pixels(only_unlisted) == 0


async def test_html_can_come_from_an_artifact(renderer: RenderPdf) -> None:
    meta = await context(renderer).artifacts.put(INVOICE.encode(), "text/html")
    _, pdf = await render(renderer, html_artifact_id=meta.id)
    assert "Total de plată" in text_of(pdf)


async def test_javascript_is_off_unless_asked_and_wait_conditions_then_apply(
        renderer: RenderPdf) -> None:
    html = ("<p id=static>static</p><script>setTimeout(() => {const p = "
            "document.createElement('p'); p.id = 'late'; p.textContent = 'scris de script';"
            "document.body.append(p); window.ready = true}, 300)</script>")
    _, off = await render(renderer, html=html)
    assert "scris de script" not in text_of(off)
    _, by_selector = await render(renderer, html=html, javascript=True, wait_for_selector="#late")
    _, by_expression = await render(renderer, html=html, javascript=True,
                                    wait_for_expression="window.ready === true")
    assert "scris de script" in text_of(by_selector) and "scris de script" in text_of(
        by_expression)


async def test_a_wait_condition_that_never_holds_times_out_with_a_clear_error(
        renderer: RenderPdf) -> None:
    with pytest.raises(RenderTimeout, match=r"longer than 1 s \(waiting for expression "
                                            r"'window.never'\)") as err:
        await render(renderer, html="<p>x</p>", javascript=True,
                     wait_for_expression="window.never", timeout_s=1)
    assert not err.value.retryable


async def test_limits_on_pages_and_timeouts_come_from_settings(limited: RenderPdf) -> None:
    html = "".join(PAGE_BREAK.format(f"Pagina {n}") for n in (1, 2, 3))
    with pytest.raises(NonRetryable, match="3 pages, over WORKERS_PDF_MAX_PAGES=2"):
        await render(limited, html=html)
    result, _ = await render(limited, html=html, page_ranges="1-2")
    assert result.pages == 2
    with pytest.raises(NonRetryable, match="over WORKERS_PDF_RENDER_TIMEOUT_S=5"):
        await render(limited, html="<p>x</p>", timeout_s=6)


@pytest.mark.parametrize(("payload", "error"), [
    ({}, "exactly one of html, html_artifact_id, url"),
    ({"html": "x", "url": "https://example.com/"}, "exactly one of"),
    ({"html": "x", "width": "10cm"}, "both width and height"),
    ({"html": "x", "width": "10cm", "height": "5cm", "paper_format": "A4"}, "not both"),
    ({"html": "x", "wait_for_selector": "#x"}, "need javascript=true"),
    ({"html": "x", "wait_for_expression": "1"}, "need javascript=true"),
    ({"html": "x", "scale": 3}, "less than or equal to 2"),
    ({"html": "x", "scale": 0.05}, "greater than or equal to 0.1"),
    ({"html": "x", "page_ranges": "1-2; rm -rf"}, "page_ranges"),
    ({"html": "x", "margin": {"top": "1 furlong"}}, "margin.top"),
    ({"html": "x", "paper_format": "B5"}, "paper_format"),
    ({"url": "file:///etc/passwd"}, "http or https"),
    ({"html": "x", "assets": ["../../etc/passwd"]}, "assets"),
    ({"html": "x", "filename": "../x.pdf"}, "filename"),
    ({"html": "x", "javascript_enabled": True}, "Extra inputs are not permitted"),
])
def test_invalid_payloads_are_rejected_before_any_rendering(payload: dict[str, Any],
                                                            error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PdfPayload.model_validate(payload)


# -- isolation ----------------------------------------------------------------------------------


async def test_nothing_on_loopback_is_requested_whatever_references_it(
        renderer: RenderPdf, loopback_server: tuple[int, list[str]]) -> None:
    port, hits = loopback_server
    base = f"http://127.0.0.1:{port}"
    html = f"""<html><head><link rel="stylesheet" href="{base}/link.css">
    <link rel="prefetch" href="{base}/prefetch"><link rel="icon" href="{base}/favicon.ico">
    <style>@import url("{base}/import.css"); body{{background:url({base}/bg.png)}}
    @font-face{{font-family:X;src:url(http://localhost:{port}/font.woff)}}</style>
    <script src="{base}/script.js"></script></head><body><p>rămâne local</p>
    <img src="{base}/img.png"><img srcset="{base}/srcset.png 2x"><iframe src="{base}/iframe">
    </iframe><object data="{base}/object"></object><embed src="{base}/embed"><video
    poster="{base}/poster.png"></video><iframe srcdoc="<meta http-equiv=refresh
    content='0;url={base}/refresh'>"></iframe>
    <script>
    window.done = Promise.allSettled([
      fetch("{base}/fetch"), fetch("http://localhost:{port}/fetch-by-name"),
      fetch("http://[::ffff:127.0.0.1]:{port}/fetch-mapped"),
      new Promise(r => {{ const x = new XMLHttpRequest(); x.onloadend = r;
                         x.open("GET", "{base}/xhr"); x.send() }}),
      new Promise(r => {{ try {{ const ws = new WebSocket("ws://127.0.0.1:{port}/ws");
                         ws.onclose = ws.onerror = r }} catch (e) {{ r() }} }}),
    ]).then(() => {{ navigator.sendBeacon("{base}/beacon", "x"); window.finished = true }});
    </script></body></html>"""
    result, pdf = await render(renderer, html=html, javascript=True,
                               wait_for_expression="window.finished === true",
                               header_template=f'<img src="{base}/header.png">')
    assert hits == []  # the server saw nothing at all
    assert "rămâne local" in text_of(pdf) and "LOOPBACK-SECRET" not in text_of(pdf)
    blocked = "\n".join(result.blocked_requests)
    for path in ("/link.css", "/import.css", "/bg.png", "/script.js", "/img.png", "/iframe",
                 "/fetch", "/fetch-by-name", "/xhr"):
        assert f":{port}{path} (" in blocked, path  # refused by our guard, not by chance
    assert "a loopback address" in blocked


async def test_file_urls_never_reach_the_pdf(renderer: RenderPdf) -> None:
    assert "root:" in PASSWD  # else this test proves nothing
    html = """<p>început</p><iframe src="file:///etc/passwd" width=600 height=300></iframe>
    <iframe src="FILE:///etc/passwd"></iframe><object data="file:///etc/passwd"
    type="text/plain" width=600 height=300></object><embed src="file:///etc/passwd">
    <img src="file:///etc/passwd"><link rel=stylesheet href="file:///etc/passwd">
    <pre id=out></pre><script>
    fetch("file:///etc/passwd").then(r => r.text()).then(t => out.textContent = t)
      .catch(e => out.textContent = "refuzat").finally(() => window.finished = true)
    </script><p>sfârșit</p>"""
    for javascript in (False, True):
        wait = {"wait_for_expression": "window.finished"} if javascript else {}
        _, pdf = await render(renderer, html=html, javascript=javascript, **wait)
        text = text_of(pdf)
        assert "început" in text and "sfârșit" in text
        assert "root:" not in text


async def test_a_url_on_a_host_not_allowed_is_refused_naming_the_host(
        renderer: RenderPdf) -> None:
    with pytest.raises(BlockedUrl, match=r"host 'intranet\.firma\.ro' is not in "
                                         r"WORKERS_PDF_ALLOWED_HOSTS") as err:
        await render(renderer, url="https://intranet.firma.ro/factura/153")
    assert not err.value.retryable and err.value.status_code == 422


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_an_allowlisted_host_that_is_loopback_is_still_refused(
        renderer: RenderPdf, loopback_server: tuple[int, list[str]], host: str) -> None:
    port, hits = loopback_server
    with pytest.raises(BlockedUrl, match=f"host '{host}' resolves to 127.0.0.1, a loopback"):
        await render(renderer, url=f"http://{host}:{port}/factura")
    assert hits == []


STORAGE = ("<p id=out></p><script>{write}out.textContent = 'cookie=[' + document.cookie + "
           "'] storage=[' + localStorage.getItem('secret') + ']'; window.done = true</script>")


async def test_jobs_never_share_a_context_one_after_another_or_at_once(
        renderer: RenderPdf) -> None:
    writes = "document.cookie = 'secret=job; path=/'; localStorage.setItem('secret', 'job');"
    wait = {"javascript": True, "wait_for_expression": "window.done === true"}
    _, written = await render(renderer, html=STORAGE.format(write=writes), **wait)
    assert "cookie=[secret=job] storage=[job]" in text_of(written)  # else this proves nothing
    _, after = await render(renderer, html=STORAGE.format(write=""), **wait)
    assert "cookie=[] storage=[null]" in text_of(after)
    together = await asyncio.gather(*(
        render(renderer, html=STORAGE.format(write=writes if n % 2 else ""), **wait)
        for n in range(6)))
    assert [("secret=job" in text_of(pdf)) for _, pdf in together] == [False, True] * 3


async def test_a_finished_jobs_context_is_closed(renderer: RenderPdf) -> None:
    await asyncio.gather(*(render(renderer, html=f"<p>job {n}</p>") for n in range(4)))
    browser = renderer.browser.browser
    assert browser is not None
    async with asyncio.timeout(10):  # closed after the job returns, off its critical path
        while len(browser.contexts) > renderer.browser.spares:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_reused_contexts_serve_script_free_jobs_wiped_and_never_script_jobs(
        redis_server: RedisServer) -> None:
    task = RenderPdf(pdf_settings(redis_server, pdf_reuse_context_jobs=4))
    await task.setup()
    try:
        warm = task.browser
        browser = warm.browser
        assert browser is not None
        for context_ in browser.contexts:  # as if an allowed host had set one
            await context_.add_cookies([{"name": "secret", "value": "job",
                                         "url": "https://cdn.firma.ro/"}])
        texts = [text_of((await render(task, html=f"<p>factura {n}</p>"))[1])
                 for n in range(6)]
        assert [f"factura {n}" in t for n, t in enumerate(texts)] == [True] * 6
        assert all(f"factura {n - 1}" not in t for n, t in enumerate(texts) if n)
        assert warm.reused >= 3  # else the jobs had fresh contexts and this proves nothing
        async def cookies_left() -> bool:
            for context_ in browser.contexts:
                with contextlib.suppress(PlaywrightError):  # closed meanwhile: none left
                    if await context_.cookies():
                        return True
            return False

        async with asyncio.timeout(10):  # the last job's context is wiped in the background
            while await cookies_left():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        reused = warm.reused
        wait = {"javascript": True, "wait_for_expression": "window.done === true"}
        writes = "document.cookie = 'secret=job; path=/'; localStorage.setItem('secret', 'job');"
        for _ in range(2):  # scripts run in fresh contexts only, closed after their job
            _, after = await render(task, html=STORAGE.format(write=writes), **wait)
            assert "cookie=[secret=job] storage=[job]" in text_of(after)
        assert warm.reused == reused
    finally:
        await task.close()


# -- the browser's lifecycle ---------------------------------------------------------------


async def test_health_reports_the_live_browser(renderer: RenderPdf) -> None:
    health = await renderer.health()
    assert health.ok and health.checks["chromium"].startswith("ok (")


async def test_a_missing_chromium_fails_setup_with_what_to_do(redis_server: RedisServer) -> None:
    task = RenderPdf(pdf_settings(redis_server, pdf_chromium_path=Path("/nonexistent/chromium")))
    with pytest.raises(ChromiumNotFound, match="WORKERS_PDF_CHROMIUM_PATH=/nonexistent/chromium"):
        await task.setup()


async def test_the_browser_is_replaced_after_its_quota_of_jobs_even_under_concurrency(
        limited: RenderPdf) -> None:
    warm = limited.browser
    first, launches = warm.browser, warm.launches
    assert first is not None
    results = await asyncio.gather(*(render(limited, html=f"<p>job {n}</p>") for n in range(5)))
    assert [r.pages for r, _ in results] == [1] * 5
    assert warm.launches >= launches + 2  # 5 jobs, 2 per browser
    assert not first.is_connected()  # the retired browser was closed once its jobs ended
    assert warm.connected


async def browser_pid(task: RenderPdf) -> int:
    browser = task.browser.browser
    assert browser is not None
    session = await browser.new_browser_cdp_session()
    info = await session.send("SystemInfo.getProcessInfo")
    [pid] = [p["id"] for p in info["processInfo"] if p["type"] == "browser"]
    return int(pid)


async def kill_browser(task: RenderPdf) -> None:
    browser = task.browser.browser
    assert browser is not None
    pid = await browser_pid(task)
    gone = asyncio.Event()
    browser.on("disconnected", lambda _: gone.set())
    os.kill(pid, signal.SIGKILL)
    await asyncio.wait_for(gone.wait(), timeout=10)


async def test_our_disabled_features_keep_playwrights_own(renderer: RenderPdf) -> None:
    # Chromium keeps only the last --disable-features: a name Playwright adds in a new version
    # must be added to PLAYWRIGHT_DISABLED_FEATURES too, or it is silently enabled again.
    cmdline = Path(f"/proc/{await browser_pid(renderer)}/cmdline")
    argv = (await asyncio.to_thread(cmdline.read_bytes)).split(b"\0")
    lists = [a.decode().partition("=")[2].split(",") for a in argv
             if a.startswith(b"--disable-features=")]
    assert len(lists) >= 2 and "RenderDocument" in lists[-1]
    assert set().union(*lists[:-1]) <= set(lists[-1])


async def test_a_killed_browser_is_replaced_for_the_next_job(limited: RenderPdf) -> None:
    await kill_browser(limited)
    assert not limited.browser.connected
    result, pdf = await render(limited, html=INVOICE)
    assert result.pages == 1 and "1.190,00 lei" in text_of(pdf)
    assert (await limited.health()).ok


async def test_a_browser_killed_mid_job_fails_that_job_as_retryable(limited: RenderPdf) -> None:
    job = asyncio.create_task(render(limited, html="<p>x</p>", javascript=True,
                                     wait_for_expression="window.never", timeout_s=5))
    def loading() -> bool:  # read the browser each time: the job may have replaced it
        current = limited.browser.browser
        return current is not None and any(
            p.url == DOCUMENT_URL for c in current.contexts for p in c.pages)

    async with asyncio.timeout(10):  # Playwright has no event for "some page loaded X"
        while not loading():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await kill_browser(limited)
    with pytest.raises(BrowserCrashed) as err:
        await job
    assert err.value.retryable
    result, _ = await render(limited, html="<p>după</p>")
    assert result.pages == 1
