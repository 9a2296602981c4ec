"""``GET /console``: the console's page, and ``/console/static/…``: its built assets (imports
console).

The page holds no data: everything it shows comes from the APIs, with the key the person logs
in with, so neither route needs a key. Both are served with a Content-Security-Policy that lets
the page reach this server only (``'self'``): no CDN, no external URL, no inline script. The
assets are built from ``web/console`` by ``make console-assets`` and committed.

``?lang=zh`` or ``?lang=en`` picks the labels; without it, ``Accept-Language`` does::

    GET /console?lang=zh  -> 200 text/html (labels in Chinese)
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from thinkserve.console.labels import labels, language_of

STATIC = "/console/static"
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""``'unsafe-inline'`` styles only: uPlot and Preact set ``style`` attributes. Scripts are files."""
HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Content-Security-Policy": POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
)
_LANG_TAGS: Mapping[str, str] = MappingProxyType({"en": "en", "zh": "zh-CN"})


def static_dir() -> Path:
    return Path(str(resources.files("thinkserve.console").joinpath("static")))


def _assets_version(folder: Path) -> str:
    """A digest of the built assets, so that a browser never keeps last build's script."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _environment() -> jinja2.Environment:
    loader = jinja2.PackageLoader("thinkserve.console", "templates")
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


def _config_json(language: str) -> str:
    """The front end's configuration, safe inside ``<script type="application/json">``: ``<``,
    ``>`` and ``&`` are escaped as JSON escapes, so no text can close the element."""
    text = orjson.dumps({"lang": language, "labels": dict(labels(language))}).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(language: str, template: jinja2.Template, version: str) -> str:
    return template.render(
        lang=language,
        lang_tag=_LANG_TAGS[language],
        t=labels(language),
        static=STATIC,
        version=html.escape(version),
        config=_config_json(language),
    )


class _Assets(StaticFiles):
    """The built assets, with the console's security headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def routes() -> list[BaseRoute]:
    template = _environment().get_template("console.html")
    folder = static_dir()
    version = _assets_version(folder)

    async def page(request: Request) -> Response:
        language = language_of(request.query_params.get("lang"), request.headers.get("accept-language"))
        body = render_page(language, template, version)
        return HTMLResponse(body, headers={**HEADERS, "Cache-Control": "no-cache"})

    async def slash(request: Request) -> Response:
        return RedirectResponse("/console" + (f"?{request.url.query}" if request.url.query else ""), 308)

    return [
        Route("/console", page, methods=["GET"]),
        Route("/console/", slash, methods=["GET"]),
        Mount(STATIC, app=_Assets(directory=folder), name="console-static"),
    ]
