"""``/docs`` (Swagger UI) and ``/redoc`` from assets installed with the package.

FastAPI's own pages load their JavaScript from a CDN and render blank without internet;
these load it from the ``fastapi-offline`` distribution's static files (a dependency),
served under ``/docs-assets``. Create the app with ``docs_url=None, redoc_url=None`` and
call :func:`offline_docs` on it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def assets_dir() -> Path:
    """Where the installed Swagger UI and ReDoc files are."""
    return Path(str(files("fastapi_offline") / "static"))


def offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` for ``app`` with no request leaving the host."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
