"""The HTTP service: rerank candidates and search a store over HTTP (``edgecolbert serve``)."""

from edgecolbert.serving.app import ServiceSettings, create_app, serve, serve_in_background

__all__ = ["ServiceSettings", "create_app", "serve", "serve_in_background"]
