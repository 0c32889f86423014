"""The OpenAPI 3.1 document for authgate's admin API, served at `/admin/openapi.json`."""

from __future__ import annotations

from typing import Any

_NULLABLE_STRING = {"type": ["string", "null"]}

_EVENT = {
    "type": "object",
    "required": ["seq", "time", "actor", "actor_type", "actor_name", "action", "outcome", "prev_hash", "hash"],
    "properties": {
        "seq": {"type": "integer", "description": "Position in the hash chain; pages go by it."},
        "time": {"type": "string", "format": "date-time"},
        "actor": {"type": "string", "example": "user:alice"},
        "actor_type": {"type": "string", "enum": ["anonymous", "user", "robot", "cli", "server"]},
        "actor_name": {"type": "string"},
        "action": {"type": "string", "description": "subject:action[:outcome]", "example": "manifest:push"},
        "repository": _NULLABLE_STRING,
        "reference": {**_NULLABLE_STRING, "description": "Tag or digest the client named."},
        "digest": _NULLABLE_STRING,
        "size": {"type": ["integer", "null"]},
        "outcome": {"type": "string", "example": "success"},
        "reason": _NULLABLE_STRING,
        "address": {**_NULLABLE_STRING, "description": "Client address (X-Forwarded-For from trusted proxies only)."},
        "user_agent": _NULLABLE_STRING,
        "request_id": _NULLABLE_STRING,
        "details": {"type": ["object", "null"]},
        "source_id": {**_NULLABLE_STRING, "description": "The registry notification's event id, if any."},
        "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}

_ERRORS = {
    "type": "object",
    "properties": {"errors": {"type": "array", "items": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "detail": {}}}}},
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def openapi_document(server_url: str) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "authgate admin API", "version": "1",
                 "description": "Administration of authgate. Admin users only: authenticate with a bearer "
                                "token from /token or with Basic credentials."},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}, {"basic": []}],
        "paths": {
            "/admin/audit": {"get": {
                "operationId": "listAuditEvents",
                "summary": "Audit events, newest first, filtered and paginated by seq",
                "parameters": [
                    _query("repository", "Only events on this repository (exact name)."),
                    _query("actor", "Only events by this actor: a name, or user:NAME / robot:NAME."),
                    _query("action", "Exact action (manifest:push) or a prefix of whole parts (manifest)."),
                    _query("since", "From this time: ISO 8601, or an age such as 24h or 7d.",
                           {"type": "string", "example": "2026-11-28T00:00:00Z"}),
                    _query("until", "Before this time: ISO 8601, or an age."),
                    _query("limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
                    _query("before", "Only events with a smaller seq: the next page (see `next`).",
                           {"type": "integer", "minimum": 1}),
                ],
                "responses": {
                    "200": {
                        "description": "A page of events. `next` (also a Link header) fetches the following page.",
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["events", "next"],
                            "properties": {
                                "events": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}},
                                "next": {"type": ["string", "null"], "format": "uri"},
                            }}}},
                    },
                    "400": {"description": "A malformed parameter", **error},
                    "401": {"description": "Not logged in (WWW-Authenticate says how)", **error},
                    "403": {"description": "Logged in, but not an admin", **error},
                },
            }},
        },
        "components": {
            "schemas": {"AuditEvent": _EVENT, "Errors": _ERRORS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }
