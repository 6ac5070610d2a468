"""``GET /ops``: the operations page, static HTML + one script + one style sheet, served from
this package (no build step, nothing fetched from elsewhere).

The page and its assets are public: they hold no data. Every call the script makes goes to
the HTTP API with the operator's bearer token and needs that route's own scope. A strict
Content-Security-Policy (scripts and styles from this origin only, no inline code, no
framing) backs up the script's rule of rendering data as text only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import Response

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: a new release's script is picked up at once
}
# Served names -> media types; nothing else under /ops/static answers.
ASSETS = {
    "ops.js": "text/javascript; charset=utf-8",
    "ops.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
STATIC = files("workers_core.ops") / "static"


def _static_response(body: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def serve_static() -> Response:
        return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

    return serve_static


def install_ops_page(app: FastAPI) -> None:
    """``/ops`` and ``/ops/static/<asset>``; files are read once, when the app is built."""
    app.add_api_route("/ops", _static_response((STATIC / "index.html").read_bytes(),
                                               "text/html; charset=utf-8"),
                      methods=["GET"], include_in_schema=False)
    for name, media_type in ASSETS.items():
        app.add_api_route(f"/ops/static/{name}",
                          _static_response((STATIC / name).read_bytes(), media_type),
                          methods=["GET"], include_in_schema=False)
