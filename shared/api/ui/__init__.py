"""Browser pages served by the `status` function (and so by `all`).

- `GET /docs`: Swagger UI on `/openapi.json`. Its assets come from the
  `swagger-ui-bundle-v2` package installed with the project (Swagger UI 5,
  which renders OpenAPI 3.1), served at `/docs/static/<file>`: no CDN, so the
  page works on an offline cluster.
- `GET /ui`: the live dashboard (plain HTML/JS/CSS in `shared/api/ui/static/`,
  served at `/ui/static/<file>`); `GET /ui/config.json` tells it where each
  function is (`shared/api/public.py`).
"""

from __future__ import annotations

import mimetypes
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from shared.api import public, web
from shared.core.errors import NotFound

# Only what the pages load (no source maps: browsers ask for them only with devtools open).
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png"})
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
# Pages may load only their own origin's scripts and styles; connect-src allows the other functions.
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "connect-src 'self' {origins}; frame-ancestors 'none'; base-uri 'self'")


def _own() -> Traversable:
    return resources.files(__name__).joinpath("static")


def _swagger() -> Traversable:
    from swagger_ui_bundle import swagger_ui_path  # the swagger-ui-bundle-v2 distribution

    return swagger_ui_path  # type: ignore[no-any-return]


def swagger_version() -> str:
    return _swagger().name.removeprefix("swagger-ui-")


@cache
def _read(root: str, name: str) -> bytes:
    folder = _swagger() if root == "swagger" else _own()
    return folder.joinpath(name).read_bytes()


def _headers(cacheable: bool) -> dict[str, str]:
    origins = " ".join(sorted(set(public.URLS.values())))
    return {"Cache-Control": "public, max-age=86400" if cacheable else "no-cache",
            "Content-Security-Policy": _CSP.format(origins=origins).replace("  ", " "),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def _asset(root: str, name: str, allowed: frozenset[str], *, cacheable: bool) -> Response:
    if name not in allowed:
        raise NotFound(f"no asset {name!r}")
    kind = _TYPES.get("." + name.rsplit(".", 1)[-1]) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(_read(root, name), media_type=kind, headers=_headers(cacheable))


OWN_FILES = frozenset({"app.js", "app.css", "coverage.js", "groups.js", "docs.js", "docs.css"})


async def docs_page(request: Request, params: web.Params) -> Response:
    html = _read("own", "docs.html").decode().replace("{{SWAGGER_VERSION}}", swagger_version())
    return HTMLResponse(html, headers=_headers(False))


async def docs_asset(request: Request, params: web.Params) -> Response:
    return _asset("swagger", params["name"], SWAGGER_FILES, cacheable=True)


async def dashboard(request: Request, params: web.Params) -> Response:
    return HTMLResponse(_read("own", "index.html"), headers=_headers(False))


async def ui_asset(request: Request, params: web.Params) -> Response:
    return _asset("own", params["name"], OWN_FILES, cacheable=False)


async def ui_config(request: Request, params: web.Params) -> Response:
    """Base URL per function ('' = this origin), for the dashboard's calls."""
    return JSONResponse({f: public.base(f) for f in public.FUNCTIONS}, headers={"Cache-Control": "no-cache"})


ROUTES = [
    web.route("GET", "/docs", docs_page, role=web.OPEN),
    web.route("GET", "/docs/static/{name}", docs_asset, role=web.OPEN),
    web.route("GET", "/ui", dashboard, role=web.OPEN),
    web.route("GET", "/ui/config.json", ui_config, role=web.OPEN),
    web.route("GET", "/ui/static/{name}", ui_asset, role=web.OPEN),
]
