"""The admin API under ``/admin``, protected by a bearer token, backed by :class:`EnforcerAdmin`.

Routes (JSON in, JSON out):

* ``GET /admin/accounts/{account_id}``: score, flag, cluster, signals, override, bucket state
* ``GET /admin/clusters/{cluster_id}``: score, members, bucket state
* ``PUT /admin/overrides/{account_id}`` with ``{"action": "allow"|"block", "reason": "...", "by": "..."}``
* ``DELETE /admin/overrides/{account_id}``: 204, or 404 when there was none
* ``GET /admin/decisions?limit=100&account_id=...``: recent non-trivial decisions, newest first
* ``GET /admin/recorder``: recording's state (``running``, ``restarting``, ``failed`` and why, ``closed``)
  and counters: records pending and lag, WAL bytes on disk, committed, batches, quarantined, store errors,
  worker restarts, exchanges lost to failed WAL writes (and the error while they fail), the worker's own
  last report

Without a configured token every route answers 403: the API is off, not open.

Example:
    >>> handle_admin(None, "GET", "/admin/decisions", b"", b"", token=None)[0]
    403
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from distillguard.gateway.types import Action, EnforcerAdmin, Recorder

_OVERRIDE_ACTIONS = {"allow": Action.ALLOW, "block": Action.BLOCK}
MAX_DECISIONS = 10_000


def admin_error(status: int, message: str, code: str) -> tuple[int, dict[str, Any]]:
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}.get(status, "invalid_request_error")
    return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}


def authorized(authorization: bytes | None, token: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``."""
    if not authorization:
        return False
    return hmac.compare_digest(authorization, b"Bearer " + token.encode())


def handle_admin(
    admin: EnforcerAdmin | None, method: str, path: str, query: bytes, body: bytes, *, token: str | None,
    authorization: bytes | None = None, recorder: Recorder | None = None,
) -> tuple[int, dict[str, Any] | list | None]:
    """(status, JSON body) of one admin request."""
    if token is None:
        return admin_error(403, "the admin API is disabled (no admin token configured)", "admin_disabled")
    if not authorized(authorization, token):
        return admin_error(401, "missing or wrong admin token", "invalid_admin_token")
    if path == "/admin/recorder" and method == "GET" and recorder is not None:
        return 200, recorder.status()
    if admin is None:
        return admin_error(501, "the configured enforcer has no admin interface", "admin_unsupported")
    parts = [unquote(p) for p in path.split("/")[2:]]  # after "/admin"
    if len(parts) == 2 and parts[0] == "accounts" and method == "GET":
        return 200, admin.account_risk(parts[1])
    if len(parts) == 2 and parts[0] == "clusters" and method == "GET":
        return 200, admin.cluster_risk(parts[1])
    if len(parts) == 2 and parts[0] == "overrides" and method == "PUT":
        try:
            data = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as exc:
            return admin_error(400, f"body is not valid JSON: {exc}", "invalid_json")
        action = _OVERRIDE_ACTIONS.get(str(data.get("action", "")).lower()) if isinstance(data, dict) else None
        if action is None:
            return admin_error(400, 'body must be {"action": "allow" | "block", "reason": "..."}', "invalid_override")
        reason = str(data.get("reason") or "manual override")
        admin.set_override(parts[1], action, reason, by=str(data.get("by") or "admin"))
        return 200, {"account_id": parts[1], "override": action.value, "reason": reason}
    if len(parts) == 2 and parts[0] == "overrides" and method == "DELETE":
        if admin.clear_override(parts[1]):
            return 204, None
        return admin_error(404, f"no override for account {parts[1]!r}", "no_override")
    if parts == ["decisions"] and method == "GET":
        params = parse_qs(query.decode("latin-1"))
        try:
            limit = int(params.get("limit", ["100"])[0])
        except ValueError:
            return admin_error(400, "limit must be an integer", "invalid_limit")
        limit = max(1, min(limit, MAX_DECISIONS))
        return 200, admin.decisions(limit=limit, account_id=params.get("account_id", [None])[0])
    return admin_error(404, f"unknown admin route {method} {path}", "unknown_route")
