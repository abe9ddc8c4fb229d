"""The HTTP API as an ASGI application (Starlette): ``create_app`` builds it, ``serve`` runs it
on uvicorn. docs/http-api.md describes the API."""

from agents_run.http.app import create_app
from agents_run.http.settings import AuthHook, HttpLimits
from agents_run.http.sse import end_streams

__all__ = ["AuthHook", "HttpLimits", "create_app", "end_streams"]
