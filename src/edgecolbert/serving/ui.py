"""The search page at ``/ui``: static files shipped in the package, calling the service's own endpoints.

The page holds no data and needs no key to load; its API calls send the key the user types in, as
``Authorization: Bearer``, like any other client. Documents are untrusted text: the page builds DOM
nodes from them (never HTML), and the Content-Security-Policy below allows only this page's own
script, style and API calls, so an injected script would not run even if a bug let markup through.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

UI_PATH = "/ui"

_FILES = {
    "": ("ui.html", "text/html; charset=utf-8"),
    "ui.js": ("ui.js", "text/javascript; charset=utf-8"),
    "ui.css": ("ui.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

ui_router = APIRouter(include_in_schema=False)


@ui_router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(UI_PATH)


@ui_router.get(UI_PATH)
async def page() -> Response:
    return _static("")


@ui_router.get(UI_PATH + "/{name}")
async def asset(name: str) -> Response:
    return _static(name)


def _static(name: str) -> Response:
    if name not in _FILES:
        raise HTTPException(404, f"No file {name!r} in the page; it has {', '.join(sorted(n for n in _FILES if n))}.")
    filename, media_type = _FILES[name]
    content = resources.files("edgecolbert.serving").joinpath("static").joinpath(filename).read_bytes()
    return Response(content, media_type=media_type, headers=_HEADERS)
