"""The admin API, the metrics and the dashboard, served beside the proxy.

Routes (docs/admin-api.md has the full contract):

    GET  /health, /ready                       open: probes carry no key
    POST /admin/login, /admin/logout           the dashboard's session cookie
    GET  /dashboard, /dashboard/app.js         the page (sign-in form without a session)
    GET  /dashboard/app.css                    open: style, no data
    GET  /admin/keys, /admin/models            admin key or session
    GET  /admin/stats                          admin key or session
    GET  /admin/usage                          admin key or session: the usage ledger
    POST /admin/keys/{label}/{action}          disable | enable | restore
    POST /admin/reload                         read the config file again
    GET  /metrics                              metrics key, admin key or session
                                               (or open with metrics_public)

``/ready`` says whether this process can serve: it answers 503 only while
it drains (a load balancer should send it nothing new); a model without a
usable key is a fact about that model, not about the process, so model
availability has its own endpoint, ``/admin/models``.

Admin keys are the config's ``admin_keys``; with none, every admin route
answers 403, on loopback too.  Prometheus has keys of its own,
``metrics_keys``, which open ``/metrics`` and nothing else.  A request
authenticates with its own header (``Authorization: Bearer``,
``x-api-key``) or with the dashboard's session cookie; a session is a
random token, never the key, and a request that changes something on a
session's strength must carry ``x-byok-csrf: 1``, which a page of another
origin cannot send without a CORS preflight that byok never grants.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote

import msgspec
import trio

from byok_core import State

from ..config import Key, Model
from ..gateway.auth import credential, matches
from ..gateway.routing import Pool
from ..gateway.runtime import Live, ReloadError
from ..http.server import Request, Response
from ..telemetry.metrics import CONTENT_TYPE
from ..telemetry.usage_book import GROUPS, MEASURES, UsageBookError, hour_of
from ..telemetry.usage_query import (
    COST_DECIMALS,
    DEFAULT_BY,
    UsageQueryError,
    parse_by,
    parse_when,
    start_of_month,
)

log = logging.getLogger("byok.proxy")

SESSION_COOKIE = "byok_session"
SESSION_SECONDS = 12 * 3600
ACTIONS = ("disable", "enable", "restore")

_JSON = [("content-type", "application/json"), ("cache-control", "no-store")]
_PAGE_HEADERS = [
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
]
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


_NONE_SPENT = (0, 0)  # input and output tokens of a key on a target it never served


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Admin:
    def __init__(self, live: Live) -> None:
        self.live = live
        # set by app.serve() when a drain begins: /ready answers 503 from then on
        self.draining = False
        self._sessions: dict[str, tuple[float, bytes]] = {}  # token -> (expiry, admin key)
        self._files: dict[str, bytes] = {}

    async def __call__(self, request: Request) -> Response | None:
        """The answer to an admin route; None when the path is not one."""
        path = request.path
        if path == "/health":
            return _json(200, {"status": "ok"})
        if path == "/ready":
            return self._ready()
        if not path.startswith(("/admin/", "/dashboard", "/metrics")):
            return None
        if path == "/dashboard/app.css":
            return self._file("app.css")
        try:
            if path == "/metrics":
                return self._metrics(request)
            return await self._route(request, path)
        except _Refused as refusal:
            if path == "/dashboard" and refusal.status == 401:
                return self._login_page("")
            return _json_error(refusal.status, str(refusal))

    async def _route(self, request: Request, path: str) -> Response:
        method = request.method
        if not self._admin_secrets():
            raise _Refused(403, "the admin API is off: set admin_keys in [server] to turn it on")
        if path == "/admin/login":
            _expect(method, "POST")
            return self._login(request)
        if path == "/admin/logout":
            _expect(method, "POST")
            return self._logout(request)
        by_session = self._authenticate(request)
        if method == "POST" and by_session and request.header("x-byok-csrf") != "1":
            raise _Refused(403, "a change made with the dashboard's session needs x-byok-csrf: 1")
        if path == "/dashboard":
            _expect(method, "GET")
            return self._file("index.html")
        if path == "/dashboard/app.js":
            return self._file("app.js")
        if path == "/admin/keys":
            _expect(method, "GET")
            return _json(200, self.keys_view())
        if path == "/admin/models":
            _expect(method, "GET")
            return _json(200, self.models_view())
        if path == "/admin/stats":
            _expect(method, "GET")
            return _json(200, self._stats())
        if path == "/admin/usage":
            _expect(method, "GET")
            return await self._usage(request)
        if path == "/admin/reload":
            _expect(method, "POST")
            return await self._reload()
        parts = path.split("/")  # "", "admin", "keys", label, action
        if len(parts) == 5 and parts[2] == "keys" and parts[4] in ACTIONS:
            _expect(method, "POST")
            return self._act(unquote(parts[3]), parts[4], request)
        raise _Refused(404, f"no admin endpoint {path}; see docs/admin-api.md")

    # ---- who is asking ------------------------------------------------------------

    def _admin_secrets(self) -> list[bytes]:
        return [k.secret.encode("utf-8") for k in self.live.runtime.config.server.admin_keys]

    def _authenticate(self, request: Request) -> bool:
        """Pass or raise 401; True when a session cookie (not a key) passed."""
        admin = self._admin_secrets()
        presented = credential(request)
        if presented:
            if matches(presented, admin):
                return False
            raise _Refused(401, "wrong admin key")
        if self._in_session(request, admin):
            return True
        raise _Refused(
            401,
            "an admin key is needed: send 'Authorization: Bearer <admin key>' "
            "(admin_keys in [server])",
        )

    def _in_session(self, request: Request, admin: list[bytes]) -> bool:
        session = self._sessions.get(_cookie(request, SESSION_COOKIE))
        if session is None:
            return False
        expiry, key = session
        # a session ends with its time, or when its key leaves the config
        return expiry > time.time() and key in admin

    def _authenticate_scraper(self, request: Request) -> None:
        """Pass a metrics key, an admin key or an admin session, or raise."""
        server = self.live.runtime.config.server
        admin = self._admin_secrets()
        allowed = [k.secret.encode("utf-8") for k in server.metrics_keys] + admin
        if not allowed:
            raise _Refused(
                403,
                "metrics are off: set metrics_keys (or admin_keys) in [server], "
                "or metrics_public = true for a scraper that sends no key",
            )
        presented = credential(request)
        if presented:
            if matches(presented, allowed):
                return
            raise _Refused(401, "wrong metrics key")
        if self._in_session(request, admin):
            return
        raise _Refused(
            401,
            "a metrics key is needed: send 'Authorization: Bearer <key>' (metrics_keys or "
            "admin_keys in [server]), or set metrics_public = true",
        )

    def _login(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        presented = (form.get("key") or [""])[0].strip()
        if not matches(presented, self._admin_secrets()):
            return self._login_page("That is not an admin key of this byok.")
        now = time.time()
        for token, (expiry, _) in list(self._sessions.items()):
            if expiry <= now:
                del self._sessions[token]
        token = secrets.token_urlsafe(32)
        self._sessions[token] = (now + SESSION_SECONDS, presented.encode("utf-8"))
        cookie = (
            f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={SESSION_SECONDS}"
        )
        return Response(303, [("location", "/dashboard"), ("set-cookie", cookie)])

    def _logout(self, request: Request) -> Response:
        self._sessions.pop(_cookie(request, SESSION_COOKIE), None)
        cookie = f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        return Response(303, [("location", "/dashboard"), ("set-cookie", cookie)])

    # ---- what it sees ---------------------------------------------------------------

    def _ready(self) -> Response:
        if self.draining:
            why = ["draining: finishing the requests in flight before it stops"]
            return _json(503, {"ready": False, "why": why})
        return _json(200, {"ready": True, "why": []})

    def _metrics(self, request: Request) -> Response:
        _expect(request.method, "GET")
        if not self.live.runtime.config.server.metrics_public:
            self._authenticate_scraper(request)
        return Response(200, [("content-type", CONTENT_TYPE)], self.live.runtime.metrics.render())

    def models_view(self) -> dict[str, Any]:
        """Whether each model can be served now: the JSON of GET /admin/models."""
        models = []
        for model, pools in self.live.runtime.router.pools_by_model():
            entry: dict[str, Any] = {
                "name": model.name if model else "*",
                "passthrough": model is None,
            }
            if model is None:
                entry["provider"] = pools[0].provider.name
            models.append({**entry, **self._availability(model, pools)})
        return {"now": time.time(), "models": models}

    def _availability(self, model: Model | None, pools: list[Pool]) -> dict[str, Any]:
        """Whether a request for the model would find a usable key now, on
        its targets or its fallbacks' targets (as the proxy tries them); if
        not, why, and when the soonest key returns (what Retry-After says)."""
        if model is not None:
            router = self.live.runtime.router
            chain = [model, *(router.config.models[name] for name in model.fallbacks)]
            targets = [router.pool(t.provider, t.model) for m in chain for t in m.targets]
            # a target shared by a model and its fallback counts once
            pools = list({pool.name: pool for pool in targets}.values())
        now = trio.current_time()
        soonest: float | None = None
        why = "blocked_or_disabled"  # no key returns by itself: an operator or re-validation
        for pool in pools:
            wait, cause = pool.selector.outlook(now=now)
            if wait is not None and (soonest is None or wait < soonest):
                soonest, why = wait, cause
        available = soonest == 0.0
        return {
            "available": available,
            "why": None if available else str(why),
            "retry_after": None if soonest is None else round(soonest, 3),
            "targets": [pool.name for pool in pools],
        }

    def keys_view(self) -> dict[str, Any]:
        """Every key of every model and target: the JSON of GET /admin/keys."""
        runtime = self.live.runtime
        models = []
        for model, pools in runtime.router.pools_by_model():
            upstream_models = ["*"] if model is None else [t.model for t in model.targets]
            targets = [
                {
                    "provider": pool.provider.name,
                    "kind": pool.provider.kind,
                    "model": upstream_model,
                    "keys": self._key_views(pool),
                }
                for pool, upstream_model in zip(pools, upstream_models)
            ]
            models.append(
                {
                    "name": model.name if model else "*",
                    "passthrough": model is None,
                    "strategy": pools[0].selector.strategy if model is None else model.strategy,
                    "fallbacks": list(model.fallbacks) if model else [],
                    "availability": self._availability(model, pools),
                    "targets": targets,
                }
            )
        config = {
            "source": runtime.config.source,
            "generation": runtime.generation,
            "loaded_at": runtime.loaded_at,
        }
        return {"now": time.time(), "config": config, "models": models}

    def _key_views(self, pool: Pool) -> list[dict[str, Any]]:
        views = []
        provider = pool.provider.name
        now, wall = trio.current_time(), time.time()
        for view in pool.selector.snapshot(now=now):
            label = view["id"]
            key = pool.keys[label]
            notes = self.live.runtime.ledger.seen(provider, label)
            spent = notes.targets.get(pool.name, _NONE_SPENT)
            reason = notes.reason
            latency = view["latency_ewma"]
            due = self.live.revalidator.next_check(provider, label)
            blocked = view["state"] == State.BLOCKED
            views.append(
                {
                    "label": label,
                    "provider": provider,
                    "fingerprint": key.fingerprint,
                    # a short-lived key's token: where it comes from, when it expires
                    "credential": self._credential_view(key),
                    "weight": view["weight"],
                    "state": view["state"],
                    "cooldown_remaining": round(view["cooldown_remaining"], 3),
                    "cause": view["cause"],
                    "backoff_level": view["backoff_level"],
                    "revalidate_at": wall + (due - now) if blocked and due is not None else None,
                    "reason": None
                    if reason is None
                    else {"status": reason.status, "message": reason.message, "at": reason.at},
                    # a subscription's spent quota window, while it has not reset
                    "quota": None
                    if reason is None
                    or reason.window is None
                    or reason.resets_at is None
                    or reason.resets_at <= wall
                    else {"window": reason.window, "resets_at": reason.resets_at},
                    "consecutive_failures": view["consecutive_failures"],
                    "picks": view["picks"],
                    "successes": view["successes"],
                    "failures": view["failures"],
                    "rate_limits": view["rate_limits"],
                    "window": {
                        "attempts": view["window_attempts"],
                        "failures": view["window_failures"],
                    },
                    "inflight": view["inflight"],
                    "latency_ewma_ms": None if latency is None else round(latency * 1000, 2),
                    # what the key spent on this target; key_tokens: on all of them
                    "tokens": {"input": spent[0], "output": spent[1]},
                    "key_tokens": {"input": notes.input_tokens, "output": notes.output_tokens},
                }
            )
        return views

    def _credential_view(self, key: Key) -> dict[str, Any] | None:
        """A short-lived key's credential (None for a key of its own), its
        error redacted as every text shown is."""
        view = None if key.source is None else self.live.credentials.view(key.source)
        if view is not None and view["error"] is not None:
            view["error"] = self.live.runtime.redact(view["error"])
        return view

    def _stats(self) -> dict[str, Any]:
        ledger = self.live.runtime.ledger
        buckets = [
            {
                "t": b.t,
                "requests": b.requests,
                "errors": b.errors,
                "failed_attempts": b.failed_attempts,
            }
            for b in ledger.recent()
        ]
        return {"bucket_seconds": ledger.BUCKET_SECONDS, "buckets": buckets}

    async def _usage(self, request: Request) -> Response:
        """The usage ledger's sums over a period: the JSON of GET /admin/usage."""
        now = time.time()
        by, since, until = _usage_question(request, now)
        answer: dict[str, Any] = {
            "enabled": True,
            "since": hour_of(since),  # the ledger counts whole hours: from the one holding it
            "until": until,
            "by": list(by),
            "columns": list(dict.fromkeys(c for name in by for c, _ in GROUPS[name])),
            "priced": bool(self.live.runtime.config.prices),
            "rows": [],
            "totals": {**dict.fromkeys(MEASURES, 0), "cost": 0.0},
        }
        book = self.live.usage_book
        if book is None:
            answer["enabled"] = False
            answer["message"] = "the usage ledger is off: [usage] enabled = false in the config"
            return _json(200, answer)

        def read() -> tuple[list[dict[str, Any]], str | None]:
            # This process's rows go to the file first, so that the answer
            # holds its requests up to now.  The other workers of a group
            # write to the same file every second: their last second may be
            # missing.  Both block (the writer's cycle, SQLite): in a thread.
            unwritten = None
            try:
                book.flush()
            except UsageBookError as error:  # kept pending; what the file has is still true
                unwritten = f"this process's latest usage is not in it yet: {error}"
            return book.rows(since=since, until=until, by=by), unwritten

        if self.live.usage is not None:
            self.live.usage.hand_over()  # this loop's requests, to the book's writer
        try:
            rows, unwritten = await trio.to_thread.run_sync(read)
        except UsageBookError as error:
            raise _Refused(503, f"the usage ledger cannot be read: {error}") from None
        for row in rows:
            row["cost"] = round(row["cost"], COST_DECIMALS)
        totals = {name: sum(row[name] for row in rows) for name in MEASURES}
        totals["cost"] = round(float(totals["cost"]), COST_DECIMALS)
        answer.update(rows=rows, totals=totals)
        if unwritten:
            answer["message"] = unwritten
        return _json(200, answer)

    # ---- what it changes ------------------------------------------------------------

    def _act(self, label: str, action: str, request: Request) -> Response:
        router = self.live.runtime.router
        wanted = _query(request, "provider")
        providers = [
            p.name
            for p in router.config.providers.values()
            if any(k.label == label for k in p.keys) and (not wanted or p.name == wanted)
        ]
        if not providers:
            where = f" of provider {wanted!r}" if wanted else ""
            raise _Refused(404, f"no key labelled {label!r}{where}")
        if len(providers) > 1:
            raise _Refused(
                409,
                f"label {label!r} names keys of providers {', '.join(providers)}: "
                "add ?provider=NAME",
            )
        provider = providers[0]
        states = {}
        now = trio.current_time()
        for pool in router.each_key(provider, label):
            selector = pool.selector
            if action == "disable":
                selector.disable(label)
            elif action == "restore" or selector.state(label, now=now) == State.DISABLED:
                selector.restore(label)  # enable undoes a disable, nothing else
            states[pool.name] = selector.state(label, now=now)
        fingerprint = next(
            k.fingerprint for k in router.config.providers[provider].keys if k.label == label
        )
        done = {"disable": "disabled", "enable": "enabled", "restore": "restored"}[action]
        self.live.key_changed(provider, label, None, done)  # other replicas do the same
        log.warning(
            "key %s (%s) of %s: %s by an operator; now %s",
            label,
            fingerprint,
            provider,
            done,
            ", ".join(f"{state} in {pool}" for pool, state in states.items()),
        )
        return _json(
            200, {"label": label, "provider": provider, "action": action, "states": states}
        )

    async def _reload(self) -> Response:
        try:
            summary = await self.live.reload()
        except ReloadError as error:
            message = f"reload refused, nothing changed: {error}"
            return _json_error(400, message)
        return _json(200, summary)

    # ---- pages -----------------------------------------------------------------------

    def _file(self, name: str) -> Response:
        body = self._files.get(name)
        if body is None:
            body = self._files[name] = (
                resources.files("byok.ops") / "dashboard" / name
            ).read_bytes()
        kind = _STATIC_TYPES[name[name.rindex(".") :]]
        return Response(200, [("content-type", kind), *_PAGE_HEADERS], body)

    def _login_page(self, error: str) -> Response:
        page = self._file("login.html")
        assert isinstance(page.body, bytes)
        page.body = page.body.replace(b"{{error}}", html.escape(error).encode("utf-8"))
        page.status = 401
        return page


def _expect(method: str, wanted: str) -> None:
    if method != wanted:
        raise _Refused(405, f"this endpoint takes {wanted}, not {method}")


def _cookie(request: Request, name: str) -> str:
    for part in request.header("cookie").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _query(request: Request, name: str) -> str:
    _, _, query = request.target.partition("?")
    return (parse_qs(query).get(name) or [""])[0]


def _usage_question(request: Request, now: float) -> tuple[tuple[str, ...], float, float | None]:
    """GET /admin/usage's `by`, `since` and `until`, as `byok usage` reads
    them (the default period: this UTC month); a 400 for what cannot be read."""
    by, since, until = (_query(request, name).strip() for name in ("by", "since", "until"))
    try:
        groups = parse_by(by, "by") if by else DEFAULT_BY
        start = parse_when(since, now, "since") if since else start_of_month(now)
        end = parse_when(until, now, "until") if until else None
    except UsageQueryError as error:
        raise _Refused(400, str(error)) from None
    if end is not None and end <= start:
        raise _Refused(400, f"until {until!r} is not after since: nothing between")
    return groups, start, end


def _json(status: int, body: Any) -> Response:
    return Response(status, list(_JSON), msgspec.json.encode(body))


def _json_error(status: int, message: str) -> Response:
    kinds = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}
    error = {"message": message, "type": kinds.get(status, "invalid_request_error")}
    return _json(status, {"error": error})
