"""The OpenAPI 3.1 description of the API, served at ``/openapi.json``; tests validate real
answers against it."""

from __future__ import annotations

from typing import Any

RUN_STATUSES = ["queued", "running", "finished", "failed", "cancelled"]
EVENT_TYPES = ["RunStarted", "RunStep", "RunResumed", "RunFinished", "RunFailed", "RunCancelled"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "as returned by POST /runs",
}
_COMMON_ERRORS = {
    "400": _error("MalformedRequest, or a Host the server does not answer for"),
    "401": _error("Unauthorized: the auth hook refused the request"),
    "421": _error("HostNotAllowed: the Host header is not in the allow-list"),
    "500": _error("InternalServerError: the details are in the server's log"),
    "503": _error("InfraUnavailable: a server did not answer within its deadline"),
}
_STATE_CHANGING_ERRORS = {
    **_COMMON_ERRORS,
    "415": _error("UnsupportedMediaType: the request's Content-Type is not application/json"),
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "additionalProperties": False,
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "StartRequest": {
        "type": "object",
        "required": ["agent"],
        "additionalProperties": False,
        "properties": {
            "agent": {"type": "string", "description": "a registered agent's name"},
            "input": {"type": "object", "description": "the agent's input; default {}"},
        },
    },
    "StartResponse": {
        "type": "object",
        "required": ["run_id"],
        "additionalProperties": False,
        "properties": {"run_id": {"type": "string"}},
    },
    "Run": {
        "type": "object",
        "required": ["id", "agent", "status", "last_seq", "cancel_requested"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "agent": {"type": "string"},
            "status": {"enum": RUN_STATUSES},
            "last_seq": {"type": "integer", "minimum": 0},
            "cancel_requested": {"type": "boolean"},
        },
    },
    "CancelResponse": {
        "type": "object",
        "required": ["cancel_requested"],
        "additionalProperties": False,
        "properties": {"cancel_requested": {"type": "boolean"}},
    },
    "RunEvent": {
        "description": "The data field of each server-sent event (docs/wire-format.md)",
        "type": "object",
        "required": ["run_id", "seq", "type", "data"],
        "additionalProperties": False,
        "properties": {
            "run_id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1},
            "type": {"enum": EVENT_TYPES},
            "data": {"type": "object"},
        },
    },
    "StreamError": {
        "description": "The data of an event named StreamError (no id): the stream failed",
        "type": "object",
        "required": ["type", "message"],
        "additionalProperties": False,
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"enum": ["ok", "ready"]}},
    },
    "Agents": {
        "type": "object",
        "required": ["agents"],
        "additionalProperties": False,
        "properties": {"agents": {"type": "array", "items": {"type": "string"}}},
    },
}

_EVENT_STREAM = (
    "Server-sent events, backfill from the store then live, each seq once and in order: "
    "`id` = the seq, `event` = the event type, `data` = a RunEvent as JSON on one line. "
    "`: keep-alive` comments while idle. Ends after the terminal event. An event named "
    "`StreamError` (data: StreamError, no id) reports a failure after the stream began. "
    "Resume with the Last-Event-ID header (wins) or from_seq."
)


def openapi_schema(root_path: str = "") -> dict[str, Any]:
    """The document; ``root_path`` (where the app is mounted) becomes its server URL."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "agents-run HTTP API", "version": "1"},
        "servers": [{"url": root_path or "/"}],
        "paths": {
            "/runs": {
                "post": {
                    "summary": "Start a run",
                    "operationId": "startRun",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("StartRequest")}},
                    },
                    "responses": {
                        "201": {
                            **_json(_ref("StartResponse"), "the run is persisted and queued"),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        "408": _error("RequestTimeout: the body did not arrive in time"),
                        "413": _error(
                            "BodyTooLarge (the body) or PayloadTooLarge (the input): nothing "
                            "was persisted"
                        ),
                        "422": _error("UnknownAgent or InvalidArgument: nothing was persisted"),
                        **_STATE_CHANGING_ERRORS,
                    },
                }
            },
            "/runs/{run_id}": {
                "get": {
                    "summary": "Describe a run",
                    "operationId": "getRun",
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _json(_ref("Run"), "the run"),
                        "404": _error("RunNotFound"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/runs/{run_id}/events": {
                "get": {
                    "summary": "Stream a run's events",
                    "operationId": "streamRun",
                    "parameters": [
                        _RUN_ID,
                        {
                            "name": "from_seq",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1},
                            "description": "the first seq to send (inclusive); default 1",
                        },
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "schema": {"type": "string", "pattern": "^[0-9]+$"},
                            "description": "the last seq received: the stream starts after it",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": _EVENT_STREAM,
                            "content": {
                                "text/event-stream": {
                                    "schema": {"type": "string"},
                                    "x-event-data": {
                                        "RunEvent": _ref("RunEvent"),
                                        "StreamError": _ref("StreamError"),
                                    },
                                }
                            },
                        },
                        "204": {"description": "past the end of a run that has ended"},
                        "404": _error("RunNotFound"),
                        "422": _error("InvalidArgument: a bad from_seq or Last-Event-ID"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/runs/{run_id}/cancel": {
                "post": {
                    "summary": "Request a run's cancellation (idempotent)",
                    "operationId": "cancelRun",
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _json(
                            _ref("CancelResponse"), "true where this request asked for it"
                        ),
                        "404": _error("RunNotFound"),
                        **_STATE_CHANGING_ERRORS,
                    },
                }
            },
            "/agents": {
                "get": {
                    "summary": "The registered agents' names",
                    "operationId": "listAgents",
                    "responses": {"200": _json(_ref("Agents"), "names"), **_COMMON_ERRORS},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process answers",
                    "operationId": "health",
                    "responses": {"200": _json(_ref("Status"), "ok")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "The infrastructure answers within its deadline",
                    "operationId": "ready",
                    "responses": {
                        "200": _json(_ref("Status"), "ready"),
                        "503": _error("InfraUnavailable"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            "/": {
                "get": {
                    "summary": "The run viewer page",
                    "operationId": "viewer",
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
        },
        "components": {"schemas": SCHEMAS},
    }
