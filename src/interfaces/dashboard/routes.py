"""/admin/queues: the dashboard's page and its few static files.

The page holds no data. It is the same for everyone: a form for the admin key and the
scripts that, once a key is given, call the API with it in a header. So these routes are
open, and every task the page shows comes through an admin-only API route. Keys never
travel in cookies, so a request forged by another site carries none: the API's actions
cannot be triggered across sites. The headers below keep the page from being framed and
its scripts to this origin's own files.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import PurePath
from typing import Final

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

PAGE_ROOT = "/admin/queues"
_PAGE = files("interfaces.dashboard") / "page"
_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Read once: the set of files is fixed, and a name outside it is never looked up on disk.
_ASSETS: Final = {
    entry.name: (entry.read_bytes(), _TYPES[PurePath(entry.name).suffix])
    for entry in _PAGE.iterdir()
    if PurePath(entry.name).suffix in _TYPES
}
_SHELL: Final = (_PAGE / "index.html").read_bytes()

_SECURITY: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@get([PAGE_ROOT, f"{PAGE_ROOT}/"], include_in_schema=False)
async def dashboard_page() -> Response[bytes]:
    headers = {**_SECURITY, "Cache-Control": "no-store"}
    return Response(_SHELL, media_type="text/html", headers=headers)


@get(f"{PAGE_ROOT}/assets/{{name:str}}", include_in_schema=False)
async def dashboard_asset(name: FromPath[str]) -> Response[bytes]:
    asset = _ASSETS.get(name)
    if asset is None:
        raise NotFoundException(f"no asset {name!r}")
    content, media_type = asset
    headers = {**_SECURITY, "Cache-Control": "no-cache"}
    return Response(content, media_type=media_type, headers=headers)


DASHBOARD_ROUTES = [dashboard_page, dashboard_asset]
