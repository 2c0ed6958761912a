"""`specchat serve`'s OpenAI-compatible API: Starlette app, request schema, engine worker.

Needs the `serve` extra (starlette, uvicorn); nothing below the front ends imports it."""

from specchat.server.app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
