"""The HTTP service: rerank candidates and search a store over HTTP (``edgecolbert serve``)."""

from edgecolbert.errors import require

# app.py imports fastapi at module level: check it first so a missing one names the extra to install.
require("fastapi", "serve", "The HTTP service")

from edgecolbert.serving.app import ServiceSettings, create_app, serve, serve_in_background  # noqa: E402 (after the fastapi check above)

__all__ = ["ServiceSettings", "create_app", "serve", "serve_in_background"]
