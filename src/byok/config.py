"""The configuration: read from a TOML file, or built from the environment.

Everything is checked up front.  msgspec decodes each table into a frozen
Struct of the file's shape (the private ``_...Table`` classes below), which
checks field names, types and ranges; by hand remain what a schema cannot
say: resolving secrets, names that refer to other tables, keys that must
differ, and refusing an open listener without client keys.  An error names
the file, the table and the field, and says what was expected, never showing
a string that might be a key.  Secrets (upstream keys, client keys) are
resolved here from literals, ``env:NAME`` or ``file:PATH`` and from then on
travel only inside ``Key`` objects, whose ``repr`` shows a label and a
fingerprint, never the value.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Meta

from byok_core import STRATEGIES

from .credentials import (
    CredentialFileError,
    OAuthClient,
    OAuthFile,
    SecretBook,
    TokenCommand,
    TokenSource,
    Use,
)
from .credentials import files as _credential_files
from .http import egress as _egress
from .providers import ANTHROPIC_VERSION, KINDS, ProviderKind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_ANTHROPIC_VERSION = ANTHROPIC_VERSION
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ConfigError(ValueError):
    """A configuration problem, located: file, table, field."""

    def __init__(self, source: str, table: str, field_name: str, message: str) -> None:
        self.source, self.table, self.field, self.message = source, table, field_name, message
        where = f"[{table}]" if table else ""
        if field_name:
            where = f"{where} {field_name}".strip()
        super().__init__(f"{source}: {where}: {message}" if where else f"{source}: {message}")


# Key-shaped tokens an upstream may echo in an error ("Incorrect API key
# provided: sk-abc***xyz"): provider prefixes, and bearer credentials.
_KEY_SHAPED = re.compile(
    r"\b(?:sk|rk|pk|ak|key|sess)-[A-Za-z0-9_*.\-]{6,}|\bAIza[A-Za-z0-9_\-]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9_*.\-]{8,}"
)


class Redactor:
    """Takes every secret of a config, the tokens of its short-lived keys
    (`book`, as they are at each call), and key-shaped tokens, out of a text
    (``redact(text)``), a body (``redact.bytes(body)``) or header values
    (``redact.headers(headers)``): each one becomes ``[redacted]``."""

    # _KEY_SHAPED for bytes.  A secret is replaced as its UTF-8 bytes, a
    # key-shaped token as the ASCII run the pattern matched: the bytes around
    # either, UTF-8 or not, stay as they were.
    _KEY_SHAPED_BYTES = re.compile(_KEY_SHAPED.pattern.encode("ascii"))
    # What every _KEY_SHAPED match holds once lower-cased ("sk-" holds "k-",
    # "key-" "y-", "sess-" "s-"); keep the two together.  A few substring
    # searches rule most bodies out, where the regex takes ~25ns a byte.
    _KEY_SHAPED_MARKS = (b"k-", b"y-", b"s-", b"aiza", b"bearer")

    def __init__(self, secrets: Iterable[str], book: SecretBook | None = None) -> None:
        self._own = {s for s in secrets if s}
        self._book = book
        self._version = -1
        self._secrets: list[str] = []
        self._secrets_utf8: list[bytes] = []
        self._sort()

    def _sort(self) -> None:
        # longest first: a secret that contains another is replaced whole
        book = self._book
        found = self._own if book is None else self._own | set(book.secrets)
        self._secrets = sorted(found, key=len, reverse=True)
        self._secrets_utf8 = [s.encode("utf-8") for s in self._secrets]
        self._version = -1 if book is None else book.version

    def _current(self) -> None:
        if self._book is not None and self._book.version != self._version:
            self._sort()

    def __call__(self, text: str) -> str:
        self._current()
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return _KEY_SHAPED.sub("[redacted]", text)

    # before the method named bytes: an annotation after it would mean the method
    def _suspect(self, data: bytes) -> bool:
        """False when `data` surely holds no secret and no key-shaped token."""
        self._current()
        if any(secret in data for secret in self._secrets_utf8):
            return True
        lowered = data.lower()
        return any(mark in lowered for mark in self._KEY_SHAPED_MARKS)

    def bytes(self, body: bytes) -> bytes:
        """`body` (JSON, text, or not UTF-8 at all) with each secret and each
        key-shaped token replaced; `body` itself when it holds none."""
        if not self._suspect(body):
            return body
        out = body
        for secret in self._secrets_utf8:
            if secret in out:
                out = out.replace(secret, b"[redacted]")
        redacted, found = self._KEY_SHAPED_BYTES.subn(b"[redacted]", out)
        return redacted if found else out

    def headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The values of `headers` redacted (names as they are); `headers`
        itself when no value holds anything to redact."""
        values = "\n".join(value for _, value in headers)  # one look at them all
        if not self._suspect(values.encode("utf-8", "surrogatepass")):
            return headers
        return [(name, self(value)) for name, value in headers]


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a secret: safe to log."""
    return "fp-" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class Key:
    """An upstream key (or a client key): its secret never prints."""

    label: str
    secret: str = field(repr=False)  # "": a short-lived key's, which `source` gives
    weight: int = 1
    max_inflight: int = 0
    rpm: int = 0  # limits of the key over all its models (0: none); see README "Capacity"
    tpm: int = 0
    daily_tokens: int = 0
    # where a short-lived key's token comes from (byok.credentials); None: `secret`
    source: TokenSource | None = None

    @property
    def identity(self) -> str:
        """What makes it the same key across reloads: its secret, or its
        token's source (a refreshed token is the same key)."""
        return self.secret if self.source is None else self.source.identity

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity)

    def __repr__(self) -> str:
        return f"Key({self.label!r}, {self.fingerprint})"


@dataclass(frozen=True, repr=False)  # Key's repr: label and fingerprint, never the secret
class ClientKey(Key):
    """A client key (a virtual key): what it may use, and how much."""

    models: tuple[str, ...] | None = None  # None: every model
    daily_tokens: int = 0  # budgets (0: none), counted in the usage ledger
    monthly_tokens: int = 0
    monthly_cost: float = 0.0  # USD at the [prices] table's prices
    # whether admission looks at it at all: allowed models, rates or budgets
    # (read on every request: a field, set once)
    checked: bool = field(init=False, compare=False, default=False)

    def __post_init__(self) -> None:
        limited = self.rpm or self.tpm or self.daily_tokens or self.monthly_tokens
        object.__setattr__(
            self, "checked", bool(self.models is not None or limited or self.monthly_cost)
        )

    @property
    def limited(self) -> bool:
        """Whether anything is counted against this key: rates or budgets."""
        return bool(
            self.rpm or self.tpm or self.daily_tokens or self.monthly_tokens or self.monthly_cost
        )


class Egress(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How byok reaches one provider: the proxy, TLS and the connection pool.
    Its fields sit in the [providers.NAME] table."""

    # None: HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment, as curl
    # reads them; "": no proxy for this provider; else a proxy URL (it may hold
    # user:password, which is a secret)
    proxy: str | None = None
    ca_file: str | None = None  # trust this CA (PEM) instead of the system store
    client_cert: str | None = None  # mutual TLS: a PEM certificate (chain) ...
    client_key: str | None = None  # ... and its key (None: in client_cert's file)
    verify: bool = True  # false: no TLS verification at all (a loud warning at start)
    connect_timeout: _Seconds | None = None  # None: within the model's first_byte_timeout
    max_connections: _Count = 10_000  # open connections to this provider, at most


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str
    base_url: str
    keys: tuple[Key, ...]
    # Requests for models that no [models] table names go to this provider
    # unchanged (the configuration built from the environment works so).
    passthrough: bool = False
    anthropic_version: str = DEFAULT_ANTHROPIC_VERSION
    egress: Egress = field(default_factory=lambda: Egress())
    # whether its models take reasoning_effort, for an Anthropic client's
    # thinking (None: OpenAI's o-series and GPT-5 do, other servers' do not)
    reasoning: bool | None = None

    @cached_property  # read on every attempt
    def spec(self) -> ProviderKind:
        """What byok knows about this kind of provider (byok.providers)."""
        return KINDS[self.kind]

    @property
    def dialect(self) -> str:
        return self.spec.dialect


# The values a config field may take.  A description completes "expected ..."
# in the error for a value out of range, so it says the whole rule.
_MAX_SECONDS = 1e8  # byok_core's bound on any delay: its times are int64 nanoseconds
_Seconds = Annotated[float, Meta(gt=0, le=_MAX_SECONDS, description="seconds above 0 to 1e8")]
_SecondsOrZero = Annotated[float, Meta(ge=0, le=_MAX_SECONDS, description="seconds from 0 to 1e8")]
_Count = Annotated[int, Meta(ge=1, description="an integer of at least 1")]
_Share = Annotated[float, Meta(ge=0, le=1, description="a share from 0 to 1 (0: off)")]
_Port = Annotated[int, Meta(ge=0, le=65535, description="a port from 0 to 65535")]
# A key as the file gives it, resolved by hand (_Builder.secret)
_SecretSource = Annotated[str, Meta(description="a key: a literal, env:NAME or file:PATH")]


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a model's requests are retried; its fields sit in the [models.NAME] table."""

    attempts: _Count = 4  # upstream attempts per request, over all keys, targets, fallbacks
    attempt_timeout: _Seconds = 600.0  # one attempt, from send to the last byte
    first_byte_timeout: _Seconds = 60.0  # send to response headers
    deadline: _Seconds = 900.0  # the whole request, retries included
    stream_idle_timeout: _Seconds = 120.0  # longest silence inside a stream
    hedge_after: _Seconds | None = None  # off: no second racing attempt
    wait_for_cooldown: _SecondsOrZero = 0.0  # off: fail at once when every key cools


@dataclass(frozen=True)
class Target:
    provider: str
    model: str  # the upstream model name


@dataclass(frozen=True)
class PoolLimits:
    """Limits of each of a model's targets (a pool of keys): 0 is none."""

    rpm: int = 0
    tpm: int = 0
    max_inflight: int = 0


@dataclass(frozen=True)
class Model:
    name: str
    targets: tuple[Target, ...]
    strategy: str = "weighted_round_robin"
    fallbacks: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: PoolLimits = field(default_factory=PoolLimits)


class _ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The [server] fields that the file gives as they are (all but the keys)."""

    host: str = "127.0.0.1"
    port: _Port = 8787
    max_body_bytes: _Count = 32 * 1024 * 1024
    max_header_bytes: _Count = 64 * 1024
    max_headers: _Count = 100
    read_timeout: _Seconds = 60.0  # a request's head and body must arrive within this
    idle_timeout: _Seconds = 75.0  # a keep-alive connection with no request closes
    shutdown_grace: _SecondsOrZero = 30.0  # in-flight requests get this long on SIGINT/SIGTERM
    cooldown: _Seconds = 1.0  # engine: first backoff step
    max_cooldown: _Seconds = 15.0  # a recovered key is back within this
    failure_threshold: _Count = 3  # unexplained failures in a row that open the circuit
    failure_rate: _Share = 0.5  # or this share of failures in the window (0: off)
    failure_rate_window: _Seconds = 30.0
    failure_rate_min_attempts: _Count = 10  # in the window, before the share is judged
    revalidate_blocked: _SecondsOrZero = 900.0  # seconds between checks of a blocked key (0: never)
    # learn each key's remaining requests and tokens from the provider's
    # rate-limit headers and pass a key by before it would answer 429
    headroom: bool = True
    metrics_public: bool = False  # true: GET /metrics needs no key (a scraper on a private network)


class Server(_ServerSettings, frozen=True, kw_only=True):
    """The [server] table, its client and admin keys resolved."""

    client_keys: tuple[ClientKey, ...] = ()
    admin_keys: tuple[Key, ...] = ()  # none: the admin API is off
    metrics_keys: tuple[Key, ...] = ()  # bearer keys for GET /metrics only (and admin keys)


@dataclass(frozen=True)
class Cluster:
    """The [cluster] table: replicas that share their keys' states through Redis."""

    redis: str = field(repr=False)  # the URL, resolved; its password is a secret
    prefix: str = "byok"  # of every Redis key and channel: deployments can share a Redis
    replica: str | None = None  # this replica's name in Redis; None: hostname:pid

    @property
    def redis_shown(self) -> str:
        """The Redis URL as logs and errors show it: a password as ***."""
        parts = urlsplit(self.redis)
        if parts.password is None:
            return self.redis
        user = f"{parts.username}:" if parts.username else ":"
        return parts._replace(netloc=f"{user}***@{parts.netloc.rpartition('@')[2]}").geturl()


# A price per million tokens: bounded, so that a TOML inf is refused too
_PerMillion = Annotated[
    float, Meta(ge=0, le=1e6, description="a price in USD per million tokens, from 0 to 1e6")
]


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model's price, as the [prices] table gives it: USD per million
    tokens.  Only what the operator writes; nothing is looked up."""

    input: _PerMillion
    output: _PerMillion

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """What `input_tokens` and `output_tokens` cost at this price, in USD."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


@dataclass(frozen=True)
class Usage:
    """The [usage] table: where the usage ledger is kept, and whether it is."""

    path: str  # absolute
    enabled: bool = True


def default_usage_path(
    environ: Mapping[str, str] | None = None, platform: str = sys.platform
) -> str:
    """Where the usage ledger is kept when [usage] path does not say: the
    platform's place for an application's data."""
    env = os.environ if environ is None else environ
    if platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return str(PureWindowsPath(base, "byok", "usage.sqlite3"))
    if platform == "darwin":
        return str(Path.home() / "Library" / "Application Support" / "byok" / "usage.sqlite3")
    data = env.get("XDG_DATA_HOME", "")
    # the XDG spec: a relative path in the variable is invalid, and ignored
    base_dir = Path(data) if os.path.isabs(data) else Path.home() / ".local" / "share"
    return str(base_dir / "byok" / "usage.sqlite3")


@dataclass(frozen=True)
class Config:
    source: str
    server: Server
    providers: Mapping[str, Provider]
    models: Mapping[str, Model]
    cluster: Cluster | None = None  # no [cluster]: this replica keeps its keys' states alone
    usage: Usage = field(default_factory=lambda: Usage(default_usage_path()))
    prices: Mapping[str, Price] = field(default_factory=dict)  # model name -> price

    def short_lived(self) -> list[Use]:
        """The keys whose secret is a short-lived token, as the credential
        store is told of them."""
        return [
            Use(provider.name, key.label, key.source, provider.egress)
            for provider in self.providers.values()
            for key in provider.keys
            if key.source is not None
        ]

    def secrets(self) -> list[str]:
        """Every secret this config holds: upstream, client and admin keys,
        proxy and Redis passwords, OAuth client secrets (a short-lived key's
        tokens are the credential store's: byok.credentials)."""
        keys = [*self.server.client_keys, *self.server.admin_keys, *self.server.metrics_keys]
        keys += [k for p in self.providers.values() for k in p.keys]
        passwords = [_password(p.egress.proxy) for p in self.providers.values()]
        passwords.append(_password(self.cluster.redis if self.cluster else None))
        passwords += [
            k.source.client.client_secret
            for k in keys
            if isinstance(k.source, OAuthFile) and k.source.client is not None
        ]
        return [k.secret for k in keys if k.secret] + [p for p in passwords if p]

    def describe(self) -> str:
        """The resolved routes, for `byok check-config`: labels, no secrets."""
        lines = [f"config: {self.source}", f"listen: http://{self.server.host}:{self.server.port}"]
        auth = (
            f"{len(self.server.client_keys)} client key(s)" if self.server.client_keys else "none"
        )
        lines.append(f"client auth: {auth}")
        admin = len(self.server.admin_keys)
        lines.append(f"admin API: {f'{admin} admin key(s)' if admin else 'off (no admin_keys)'}")
        for client in self.server.client_keys:
            if client.checked:
                lines.append(f"client key {client.label}: {_limits_text(client)}")
        for p in self.providers.values():
            keys = ", ".join(
                f"{k.label} ({k.fingerprint}{_source_text(k)}, weight {k.weight}"
                f"{_limits_text(k, ', ')})"
                for k in p.keys
            )
            extra = ", passthrough" if p.passthrough else ""
            lines.append(f"provider {p.name}: {p.kind} {p.base_url}{extra}; keys: {keys}")
        for m in self.models.values():
            targets = ", ".join(f"{t.provider}/{t.model}" for t in m.targets)
            fallbacks = f"; fallbacks: {', '.join(m.fallbacks)}" if m.fallbacks else ""
            limits = [
                f"{name} {getattr(m.limits, name)}" for name in ("rpm", "tpm", "max_inflight")
            ]
            per = [text for text in limits if not text.endswith(" 0")]
            each = f"; each target: {', '.join(per)}" if per else ""
            lines.append(f"model {m.name}: {m.strategy} over {targets}{fallbacks}{each}")
        if self.usage.enabled:
            lines.append(f"usage ledger: {self.usage.path}")
        else:
            lines.append("usage ledger: off")
        if self.cluster:
            c = self.cluster
            name = c.replica or "hostname:pid"
            lines.append(f"cluster: {c.redis_shown}, prefix {c.prefix!r}, replica {name}")
        return "\n".join(lines)


def _source_text(key: Key) -> str:
    """Where a short-lived key's token comes from, for describe()."""
    source = key.source
    if isinstance(source, OAuthFile):
        refresh = "refreshed by byok" if source.client else "not refreshed by byok"
        return f", oauth {source.path}, {refresh}"
    if isinstance(source, TokenCommand):
        return f", command {source.shown}, ttl {source.ttl:g}s"
    return ""


def _limits_text(key: Key, lead: str = "") -> str:
    """A key's limits (and a client key's models and budgets) for describe()."""
    parts = [
        f"{name} {value:,}"
        for name in ("rpm", "tpm", "daily_tokens", "monthly_tokens", "max_inflight")
        if (value := getattr(key, name, 0))
    ]
    if isinstance(key, ClientKey):
        if key.monthly_cost:
            parts.append(f"monthly_cost ${key.monthly_cost:,.2f}")
        if key.models is not None:
            parts.append(f"models {', '.join(key.models) or 'none'}")
    return lead + ", ".join(parts) if parts else ""


# ---- the file's shape ------------------------------------------------------------
# What msgspec decodes each table into: types, ranges and field names are
# checked there.  Secrets stay as the file writes them (env:/file:/literal)
# until _Builder resolves them into Keys.


_Limit = Annotated[int, Meta(ge=0, le=1 << 40, description="an integer from 0 (none) to 2**40")]


class _KeyTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A key written as a table: `{ key = "env:A", label = "team-a", weight = 2 }`;
    or a short-lived one: `{ oauth = "~/.claude/.credentials.json" }` (a file,
    or a directory holding one), `{ command = ["gcloud", "auth",
    "print-access-token"], ttl = 3000 }` (byok.credentials)."""

    key: _SecretSource | None = None
    oauth: Annotated[str, Meta(min_length=1, description="a file or directory path")] | None = None
    command: (
        Annotated[
            list[Annotated[str, Meta(min_length=1)]],
            Meta(min_length=1, description='a program and its arguments, e.g. ["gcloud", "auth"]'),
        ]
        | None
    ) = None
    ttl: _Seconds | None = None  # a command's token is kept this long (default 300)
    timeout: _Seconds | None = None  # a command that takes longer fails (default 30)
    headers: dict[str, str] | None = None  # sent with a short-lived key's token
    label: Annotated[str, Meta(min_length=1, description="a non-empty label")] | None = None
    weight: _Count = 1
    max_inflight: Annotated[int, Meta(ge=0, description="an integer of at least 0")] = 0
    rpm: _Limit = 0
    tpm: _Limit = 0
    daily_tokens: _Limit = 0


class _ClientKeyTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A client key written as a table, with what it may use and how much."""

    key: _SecretSource
    label: Annotated[str, Meta(min_length=1, description="a non-empty label")] | None = None
    models: list[str] | None = None
    rpm: _Limit = 0
    tpm: _Limit = 0
    daily_tokens: _Limit = 0
    monthly_tokens: _Limit = 0
    monthly_cost: Annotated[float, Meta(ge=0, le=1e9, description="USD from 0 (none) to 1e9")] = 0.0


class _OAuthTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[providers.NAME.oauth]: how the provider's OAuth keys are refreshed
    (the kind's defaults, where it has them, fill what is not given)."""

    token_url: (
        Annotated[str, Meta(pattern="^https?://", description="an http:// or https:// URL")] | None
    ) = None
    client_id: Annotated[str, Meta(min_length=1, description="a client id")] | None = None
    client_secret: _SecretSource | None = None
    scope: str = ""
    refresh_margin: _SecondsOrZero = 300.0
    token_format: Literal["form", "json"] | None = None
    headers: dict[str, str] | None = None  # None: the kind's (Anthropic's oauth beta flag)


class _ProviderTable(Egress, frozen=True, kw_only=True):
    oauth: _OAuthTable | None = None
    keys: Annotated[
        list[_SecretSource | _KeyTable], Meta(min_length=1, description="at least one key")
    ]
    kind: str | None = None  # None: the table's name, when that is a kind
    base_url: (
        Annotated[str, Meta(pattern="^https?://", description="an http:// or https:// URL")] | None
    ) = None
    passthrough: bool = False
    anthropic_version: str = DEFAULT_ANTHROPIC_VERSION
    reasoning: bool | None = None


_TargetText = Annotated[str, Meta(pattern="^[^/]+/.", description='"provider/upstream-model"')]


class _ModelTable(RetryPolicy, frozen=True, kw_only=True):
    """A model table: its routes, its targets' limits (PoolLimits' fields) and
    the fields of its RetryPolicy."""

    rpm: _Limit = 0
    tpm: _Limit = 0
    max_inflight: Annotated[int, Meta(ge=0, description="an integer of at least 0")] = 0

    targets: Annotated[
        list[_TargetText],
        Meta(min_length=1, description='at least one target, like "openai/gpt-4o-mini"'),
    ]
    strategy: str = "weighted_round_robin"  # one of byok_core.STRATEGIES, checked by hand
    fallbacks: list[str] = []


class _ServerTable(_ServerSettings, frozen=True, kw_only=True):
    client_keys: list[_SecretSource | _ClientKeyTable] = []
    admin_keys: list[_SecretSource] = []
    metrics_keys: list[_SecretSource] = []


class _ClusterTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # the URL may hold a password: a secret source, resolved and checked by hand
    redis: Annotated[str, Meta(description="a Redis URL: a literal, env:NAME or file:PATH")]
    prefix: Annotated[
        str,
        Meta(
            pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
            description="1 to 64 letters, digits or _ . : -",
        ),
    ] = "byok"
    replica: Annotated[str, Meta(min_length=1, max_length=200, description="a name")] | None = None


class _UsageTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: Annotated[str, Meta(min_length=1, description="a file path")] | None = None
    enabled: bool = True


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The top level; each table is decoded on its own, so that its errors
    can name it (msgspec's path shows a dict key as `[...]`)."""

    providers: Annotated[dict[str, Any], Meta(min_length=1, description="at least one provider")]
    server: dict[str, Any] = {}
    models: dict[str, Any] = {}
    cluster: dict[str, Any] | None = None
    usage: dict[str, Any] = {}
    prices: dict[str, Any] = {}


# ---- loading ---------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Config:
    # a relative path in the file is from the file's directory
    return from_dict(_toml(path), str(path), directory=os.path.dirname(os.path.abspath(path)))


def read_usage(path: str | os.PathLike[str]) -> Usage:
    """The [usage] table of the file at `path` alone, for `byok usage`: the
    rest of the file, and the keys it names, are not looked at."""
    build = _Builder(str(path), os.environ)
    return build.usage(_toml(path).get("usage", {}), os.path.dirname(os.path.abspath(path)))


def _toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file at `path`, parsed; a ConfigError if it cannot be."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(source, "", "", "file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, "", "", f"not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            source, "", "", f"not UTF-8 text: {error.reason} at byte {error.start}"
        ) from None
    except OSError as error:
        raise ConfigError(source, "", "", f"cannot read the file: {error.strerror}") from None
    return data


def from_environment(environ: Mapping[str, str] | None = None) -> Config:
    """The configuration of a bare `byok serve`: keys from the environment,
    every model passed through to the provider of the endpoint's dialect."""
    env = os.environ if environ is None else environ
    tables: dict[str, Any] = {}
    for name in ("openai", "anthropic"):
        prefix = name.upper()
        values = [v.strip() for v in env.get(f"{prefix}_API_KEYS", "").split(",") if v.strip()]
        if env.get(f"{prefix}_API_KEY", "").strip():
            values.insert(0, env[f"{prefix}_API_KEY"].strip())
        if not values:
            continue
        tables[name] = {
            "kind": name,
            "base_url": env.get(f"{prefix}_BASE_URL") or KINDS[name].default_base_url,
            "keys": list(dict.fromkeys(values)),  # the same key twice is one key
            "passthrough": True,
        }
    if not tables:
        raise ConfigError(
            "environment",
            "",
            "",
            "no upstream keys: set OPENAI_API_KEY or OPENAI_API_KEYS (comma-separated), "
            "and/or ANTHROPIC_API_KEY or ANTHROPIC_API_KEYS, or pass --config FILE; "
            "to try byok without keys, run `byok demo`",
        )
    return from_dict({"providers": tables}, "environment", environ=env)


def from_dict(
    data: Mapping[str, Any],
    source: str = "<dict>",
    environ: Mapping[str, str] | None = None,
    directory: str | os.PathLike[str] | None = None,
) -> Config:
    """A configuration from the parsed TOML shape (tests and `byok demo` build
    one).  A relative path in it is from `directory` (None: the working one)."""
    build = _Builder(source, os.environ if environ is None else environ, directory)
    tables = build.decode(data, _File, "")
    server = build.server(tables.server)
    providers = {name: build.provider(name, body) for name, body in tables.providers.items()}
    models = {name: build.model(name, body, providers) for name, body in tables.models.items()}
    for model in models.values():
        for fallback in model.fallbacks:
            if fallback not in models:
                raise ConfigError(
                    source,
                    f"models.{model.name}",
                    "fallbacks",
                    f"{_named(fallback)} is not a model in this file; known: {', '.join(models)}",
                )
    passthrough = any(p.passthrough for p in providers.values())
    for n, client in enumerate(server.client_keys):
        for name in client.models or ():
            if name not in models and not passthrough:
                raise ConfigError(
                    source,
                    "server",
                    f"client_keys[{n}].models",
                    f"{_named(name)} is not a model in this file; known: {', '.join(models)}",
                )
    if not server.client_keys and server.host not in LOOPBACK_HOSTS:
        raise ConfigError(
            source,
            "server",
            "client_keys",
            f"no client keys while listening on {server.host}: anyone who can reach it "
            "could spend your keys; set client_keys or bind to 127.0.0.1",
        )
    cluster = None if tables.cluster is None else build.cluster(tables.cluster)
    usage = build.usage(tables.usage, directory)
    for n, client in enumerate(server.client_keys):
        budget = client.daily_tokens or client.monthly_tokens or client.monthly_cost
        if budget and not usage.enabled:
            raise ConfigError(
                source,
                "server",
                f"client_keys[{n}]",
                "a budget (daily_tokens, monthly_tokens, monthly_cost) is counted in the "
                "usage ledger: set [usage] enabled = true, or drop the budget",
            )
    prices = {
        name: build.decode(body, Price, f"prices.{name}") for name, body in tables.prices.items()
    }
    return Config(
        source=source,
        server=server,
        providers=providers,
        models=models,
        cluster=cluster,
        usage=usage,
        prices=prices,
    )


_T = TypeVar("_T")


class _Builder:
    """Decodes one table at a time (so that each error knows its table), then
    does what the schema cannot: resolves secrets, checks names that refer to
    each other and keys that must differ."""

    def __init__(
        self,
        source: str,
        environ: Mapping[str, str],
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.source = source
        self.environ = environ
        self.directory = directory  # where a relative path in the file starts (None: cwd)

    def fail(self, table: str, field_name: str, message: str) -> ConfigError:
        return ConfigError(self.source, table, field_name, message)

    def decode(self, data: Any, schema: type[_T], table: str) -> _T:
        try:
            return msgspec.convert(data, schema)  # strict: no bool for an int, no "1" for 1
        except msgspec.ValidationError as error:
            raise _located(error, data, schema, self.source, table) from None

    def secret(self, value: str, table: str, where: str) -> str:
        if not value.strip():
            raise self.fail(table, where, "expected a key: a literal, env:NAME or file:PATH")
        if value.startswith("env:"):
            name = value[4:]
            if not self.environ.get(name, "").strip():
                raise self.fail(table, where, f"environment variable {name} is not set or empty")
            return self.environ[name].strip()
        if value.startswith("file:"):
            path = Path(value[5:]).expanduser()
            try:
                secret = path.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise self.fail(
                    table, where, f"cannot read key file {path}: {error.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise self.fail(table, where, f"key file {path} is not UTF-8 text") from None
            if not secret:
                raise self.fail(table, where, f"key file {path} is empty")
            return secret
        return value.strip()

    def server_keys(self, values: list[str], name: str, role: str) -> tuple[Key, ...]:
        return tuple(
            Key(label=f"{role}-{n + 1}", secret=self.secret(value, "server", f"{name}[{n}]"))
            for n, value in enumerate(values)
        )

    def client_keys(self, entries: list[str | _ClientKeyTable]) -> tuple[ClientKey, ...]:
        keys = []
        for n, entry in enumerate(entries):
            label = f"client-{n + 1}"
            where = f"client_keys[{n}]"
            if isinstance(entry, str):
                keys.append(ClientKey(label, self.secret(entry, "server", where)))
                continue
            keys.append(
                ClientKey(
                    entry.label or label,
                    self.secret(entry.key, "server", f"{where}.key"),
                    rpm=entry.rpm,
                    tpm=entry.tpm,
                    daily_tokens=entry.daily_tokens,
                    models=None if entry.models is None else tuple(entry.models),
                    monthly_tokens=entry.monthly_tokens,
                    monthly_cost=entry.monthly_cost,
                )
            )
        labels = [k.label for k in keys]
        for label in labels:
            if labels.count(label) > 1:
                raise self.fail(
                    "server", "client_keys", f"label {label!r} is used twice: it names one client"
                )
        if len({k.secret for k in keys}) != len(keys):
            raise self.fail("server", "client_keys", "the same key is listed twice")
        return tuple(keys)

    def server(self, body: Any) -> Server:
        table = self.decode(body, _ServerTable, "server")
        client_keys = self.client_keys(table.client_keys)
        admin_keys = self.server_keys(table.admin_keys, "admin_keys", "admin")
        metrics_keys = self.server_keys(table.metrics_keys, "metrics_keys", "metrics")
        client_secrets = {k.secret for k in client_keys}
        for n, key in enumerate(admin_keys):
            if key.secret in client_secrets:
                raise self.fail(
                    "server",
                    f"admin_keys[{n}]",
                    "an admin key must differ from every client key: "
                    "a client could otherwise steer the proxy",
                )
        settings = {name: getattr(table, name) for name in _ServerSettings.__struct_fields__}
        for n, key in enumerate(metrics_keys):
            if key.secret in client_secrets:
                raise self.fail(
                    "server",
                    f"metrics_keys[{n}]",
                    "a metrics key must differ from every client key",
                )
        return Server(
            **settings, client_keys=client_keys, admin_keys=admin_keys, metrics_keys=metrics_keys
        )

    def provider(self, name: str, body: Any) -> Provider:
        where = f"providers.{name}"
        table = self.decode(body, _ProviderTable, where)
        kind = name if table.kind is None and name in KINDS else table.kind
        if kind not in KINDS:
            got = "nothing (the table's name is not a kind)" if kind is None else _named(kind)
            raise self.fail(where, "kind", f"expected one of {', '.join(KINDS)}, got {got}")
        spec = KINDS[kind]
        base_url = spec.default_base_url if table.base_url is None else table.base_url
        if base_url is None:
            raise self.fail(
                where, "base_url", f"required for {kind} providers: {spec.base_url_rule}"
            )
        keys = []
        for n, entry in enumerate(table.keys):
            label = f"{name}-{n + 1}"
            if isinstance(entry, str):
                keys.append(Key(label, self.secret(entry, where, f"keys[{n}]")))
                continue
            secret, source = "", None
            if self.key_kind(entry, where, f"keys[{n}]") == "key":
                assert entry.key is not None
                secret = self.secret(entry.key, where, f"keys[{n}].key")
            else:
                source = self.token_source(entry, spec, table.oauth, where, f"keys[{n}]")
            keys.append(
                Key(
                    entry.label or label,
                    secret,
                    entry.weight,
                    entry.max_inflight,
                    entry.rpm,
                    entry.tpm,
                    entry.daily_tokens,
                    source,
                )
            )
        labels = [k.label for k in keys]
        for label in labels:
            if labels.count(label) > 1:
                raise self.fail(
                    where, "keys", f"label {label!r} is used twice: a label names one key in logs"
                )
        identities = [k.identity for k in keys]
        if len(set(identities)) != len(identities):
            raise self.fail(where, "keys", "the same key is listed twice")
        egress = Egress(**{f: getattr(table, f) for f in Egress.__struct_fields__})
        try:  # the proxy URL (given or the environment's), the certificate files
            _egress.check(egress, base_url, self.environ)
        except _egress.EgressError as error:
            raise self.fail(where, error.field, str(error)) from None
        return Provider(
            name=name,
            kind=kind,
            base_url=base_url.rstrip("/"),
            keys=tuple(keys),
            passthrough=table.passthrough,
            anthropic_version=table.anthropic_version,
            egress=egress,
            reasoning=table.reasoning,
        )

    def key_kind(self, entry: _KeyTable, table: str, where: str) -> str:
        """Which kind of key a table gives (key, oauth or command), and that
        it takes no field of another kind's."""
        given = [kind for kind in _KEY_FIELDS if getattr(entry, kind) is not None]
        if not given:
            raise self.fail(table, f"{where}.key", _KEY_MISSING)
        if len(given) > 1:
            raise self.fail(table, f"{where}.{given[1]}", "give one of key, oauth or command")
        kind = given[0]
        for extra in ("ttl", "timeout", "headers"):
            if getattr(entry, extra) is not None and extra not in _KEY_FIELDS[kind]:
                takers = " and ".join(k for k, fields in _KEY_FIELDS.items() if extra in fields)
                raise self.fail(table, f"{where}.{extra}", f"{extra} is for {takers} keys only")
        return kind

    def token_source(
        self,
        entry: _KeyTable,
        spec: ProviderKind,
        oauth: _OAuthTable | None,
        table: str,
        where: str,
    ) -> TokenSource:
        """The source of a short-lived key: an OAuth file (read now: one that
        cannot serve is an error here) or a command (its program found now)."""
        headers = self.headers(entry.headers, table, f"{where}.headers")
        if entry.oauth is not None:
            return self.oauth_file(entry.oauth, spec, oauth, headers, table, f"{where}.oauth")
        assert entry.command is not None  # key_kind said it is one of the two
        program = entry.command[0]
        if os.sep in program and not os.path.isabs(program):  # as a relative oauth path is
            program = os.path.join(self.directory or os.getcwd(), program)
        if shutil.which(program) is None:
            raise self.fail(
                table,
                f"{where}.command",
                f"program {program!r} not found (or not executable): give its full path, "
                "or put it on byok's PATH",
            )
        return TokenCommand(
            (program, *entry.command[1:]),
            300.0 if entry.ttl is None else entry.ttl,
            30.0 if entry.timeout is None else entry.timeout,
            headers,
        )

    def oauth_file(
        self,
        given: str,
        spec: ProviderKind,
        oauth: _OAuthTable | None,
        key_headers: tuple[tuple[str, str], ...],
        table: str,
        where: str,
    ) -> OAuthFile:
        try:
            path = Path(self.directory or os.getcwd(), Path(given).expanduser())
        except RuntimeError:  # ~name of a user this system does not know
            raise self.fail(table, where, f"no home directory for {given!r}") from None
        try:
            found = _credential_files.resolve(path)
            _credential_files.read(found)
        except CredentialFileError as error:
            raise self.fail(table, where, str(error)) from None
        defaults = spec.oauth
        settings = oauth or _OAuthTable()
        token_url = settings.token_url or (defaults.token_url if defaults else None)
        client_id = settings.client_id or (defaults.client_id if defaults else None)
        oauth_where = f"{table}.oauth"
        if token_url is not None:
            problem = _token_url_problem(token_url)
            if problem is not None:
                raise self.fail(oauth_where, "token_url", problem)
        if token_url is not None and client_id is None:
            raise self.fail(
                oauth_where, "client_id", f"required with token_url for {spec.name} providers"
            )
        client = None
        if token_url is not None and client_id is not None:
            client = OAuthClient(
                token_url=token_url,
                client_id=client_id,
                client_secret=""
                if settings.client_secret is None
                else self.secret(settings.client_secret, oauth_where, "client_secret"),
                scope=settings.scope,
                refresh_margin=settings.refresh_margin,
                token_format=settings.token_format
                or (defaults.token_format if defaults else "form"),
            )
        if settings.headers is not None:
            headers = self.headers(settings.headers, oauth_where, "headers")
        else:
            headers = defaults.headers if defaults else ()
        return OAuthFile(os.path.abspath(found), client, headers + key_headers)

    def headers(
        self, given: dict[str, str] | None, table: str, where: str
    ) -> tuple[tuple[str, str], ...]:
        """Extra request headers as the config gives them, checked: a name
        of HTTP's token characters, not one byok sets itself, and a value
        on one line."""
        out = []
        for name, value in (given or {}).items():
            lowered = name.lower()
            if not _HEADER_NAME.fullmatch(name):
                raise self.fail(table, where, f"{_named(name)} is not a header name")
            if lowered in _OWN_HEADERS:
                raise self.fail(
                    table, where, f"{name} is byok's to set: it carries the key, or the request"
                )
            if "\r" in value or "\n" in value or "\0" in value:
                raise self.fail(table, f"{where}.{name}", "a header value is one line")
            out.append((lowered, value.strip()))
        return tuple(out)

    def model(self, name: str, body: Any, providers: Mapping[str, Provider]) -> Model:
        where = f"models.{name}"
        table = self.decode(body, _ModelTable, where)
        targets = []
        for n, target in enumerate(table.targets):
            provider, _, upstream = target.partition("/")
            if provider not in providers:
                known = ", ".join(providers)
                message = f"no provider {_named(provider)}; known: {known}"
                raise self.fail(where, f"targets[{n}]", message)
            targets.append(Target(provider, upstream))
        if table.strategy not in STRATEGIES:
            valid = ", ".join(STRATEGIES)
            got = _named(table.strategy)
            raise self.fail(where, "strategy", f"expected one of {valid}, got {got}")
        retry = RetryPolicy(**{f: getattr(table, f) for f in RetryPolicy.__struct_fields__})
        limits = PoolLimits(table.rpm, table.tpm, table.max_inflight)
        return Model(name, tuple(targets), table.strategy, tuple(table.fallbacks), retry, limits)

    def cluster(self, body: Any) -> Cluster:
        table = self.decode(body, _ClusterTable, "cluster")
        url = self.secret(table.redis, "cluster", "redis")
        if not _redis_url(url):
            # the URL is never shown: it may hold a password
            raise self.fail(
                "cluster",
                "redis",
                "expected a Redis URL: redis://[user:password@]host[:port][/db] "
                "(rediss:// with TLS) or unix:///path/to/redis.sock",
            )
        return Cluster(redis=url, prefix=table.prefix, replica=table.replica)

    def usage(self, body: Any, directory: str | os.PathLike[str] | None) -> Usage:
        table = self.decode(body, _UsageTable, "usage")
        if table.path is None:
            # of this process's environment, as Config's own default: `environ`
            # is where secrets come from
            return Usage(default_usage_path(), table.enabled)
        try:
            given = Path(table.path).expanduser()
        except RuntimeError:  # ~name of a user this system does not know
            raise self.fail("usage", "path", f"no home directory for {table.path!r}") from None
        path = os.path.abspath(Path(directory or os.getcwd(), given))
        if os.path.isdir(path):
            raise self.fail(
                "usage",
                "path",
                f"{path} is a directory: name a file in it, such as "
                f"{os.path.join(path, 'usage.sqlite3')}",
            )
        return Usage(path, table.enabled)


# ---- msgspec's errors, located ---------------------------------------------------
# msgspec says "Expected `int` >= 1 - at `$.keys[2].weight`": the path is
# inside the decoded table, and the text names types, never values.  A
# ConfigError names the table and the field, and shows the value only when it
# is a number or a boolean: a string in the wrong place may be a key.

# the fields each kind of key takes, besides its label, weight and limits
_KEY_FIELDS = {"key": (), "oauth": ("headers",), "command": ("ttl", "timeout", "headers")}
_KEY_MISSING = (
    "missing; expected a key: a literal, env:NAME or file:PATH (or oauth = a credential "
    "file, or command = a program that prints a token)"
)
# extra headers of short-lived keys: HTTP's token characters, and never one
# that carries a key or frames the request
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_OWN_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "cookie",
        "proxy-authorization",
    }
)

_ERROR = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_FIELD_ERROR = re.compile(
    r"Object (?P<problem>contains unknown|missing required) field `(?P<name>[^`]*)`"
)
_TYPE_ERROR = re.compile(r"Expected `(?P<expected>[^`]*)`, got `[^`]*`")
# msgspec's names of types, as a TOML file calls them (TOML has no null,
# and msgspec takes an int for a float)
_TYPE_NAMES = {"object": "table", "array": "list", "float": "int or float", "null": ""}

_Step = str | int  # a field name, or a list index
_Node = TypeVar("_Node", bound=msgspec.inspect.Type)


def _located(
    error: msgspec.ValidationError, data: Any, schema: type, source: str, table: str
) -> ConfigError:
    """`error` as a ConfigError at `table` and the field it names.  At the top
    level (`table` empty), the first step of the path is the table."""
    found = _ERROR.fullmatch(str(error))
    assert found is not None  # the pattern matches any text
    what = found["what"]
    path: list[_Step] = [
        int(index) if index else name for name, index in _PATH_STEP.findall(found["path"] or "")
    ]
    node = _type_at(msgspec.inspect.type_info(schema), path)
    field_error = _FIELD_ERROR.fullmatch(what)
    if field_error:
        name = field_error["name"]
        if field_error["problem"] == "contains unknown":
            struct = _find(node, msgspec.inspect.StructType)
            known = ", ".join(sorted(f.encode_name for f in struct.fields)) if struct else ""
            if not table and not path:
                return ConfigError(source, "", name, f"unknown table; expected one of: {known}")
            message = f"unknown field; expected one of: {known}"
        else:
            description = _description(_type_at(node, [name]))
            message = f"missing; expected {description}" if description else "missing"
        path.append(name)
    else:
        description = _description(node)
        type_error = _TYPE_ERROR.fullmatch(what)
        if type_error:
            types = (_TYPE_NAMES.get(t, t) for t in type_error["expected"].split(" | "))
            expected = " or ".join(t for t in types if t)
            expected += f" ({description})" if description else ""
        else:  # a value out of range
            expected = description or what.removeprefix("Expected ")
        message = f"expected {expected}, got {_describe(_value_at(data, path))}"
    if not table and path:
        table, path = str(path[0]), path[1:]
    where = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
    return ConfigError(source, table, where.removeprefix("."), message)


def _type_at(node: msgspec.inspect.Type, path: list[_Step]) -> msgspec.inspect.Type:
    """The type at `path` inside `node` (AnyType where the schema has none)."""
    for step in path:
        if isinstance(step, int):
            items = _find(node, msgspec.inspect.ListType)
            if items is None:
                return msgspec.inspect.AnyType()
            node = items.item_type
        else:
            struct = _find(node, msgspec.inspect.StructType)
            fields = {f.encode_name: f.type for f in struct.fields} if struct else {}
            node = fields.get(step, msgspec.inspect.AnyType())
    return node


def _find(node: msgspec.inspect.Type, kind: type[_Node]) -> _Node | None:
    """`node` if it is a `kind`, else the `kind` inside it (Annotated, or a union)."""
    if isinstance(node, kind):
        return node
    if isinstance(node, msgspec.inspect.Metadata):
        return _find(node.type, kind)
    if isinstance(node, msgspec.inspect.UnionType):
        found = (_find(member, kind) for member in node.types)
        return next((f for f in found if f is not None), None)
    return None


def _description(node: msgspec.inspect.Type) -> str | None:
    meta = _find(node, msgspec.inspect.Metadata)
    return (meta.extra_json_schema or {}).get("description") if meta else None


def _value_at(data: Any, path: list[_Step]) -> Any:
    for step in path:
        data = data[step]
    return data


def _password(url: str | None) -> str:
    """The password in a proxy URL's user:password@, "" if none."""
    if not url:
        return ""
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:  # a malformed URL: it is refused when used
        return ""


def _redis_url(url: str) -> bool:
    """Whether `url` is a Redis URL coredis can connect with."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return False
    if parts.scheme == "unix":
        return bool(parts.path)
    db = parts.path.strip("/")
    return (
        parts.scheme in ("redis", "rediss")
        and bool(parts.hostname)
        and port != 0
        and (not db or db.isdigit())
    )


def _token_url_problem(url: str) -> str | None:
    """Why a token endpoint's URL cannot be used, or None: a refresh token
    travels to it, so it must not travel in clear text beyond this host, and
    a password in the URL would show wherever the endpoint is named."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return "a token URL holds no user or password: give client_secret instead"
    if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
        return "expected an https:// URL (http:// only to this host): a refresh token goes there"
    return None


def _named(value: str) -> str:
    """A name the config gave (a kind, a strategy, a provider, a model) for
    an error message, quoted; one that looks like a key is not repeated."""
    if len(value) > 64 or _KEY_SHAPED.search(value):
        return "a string that looks like a key (not shown)"
    return repr(value)


def _describe(value: Any) -> str:
    """A value for an error message: a number or a boolean as it is, anything
    else by its kind only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    for kinds, noun in ((str, "string"), (Mapping, "table"), ((list, tuple), "list")):
        if isinstance(value, kinds):
            return f"a {noun}" if value else f"an empty {noun}"
    return "nothing" if value is None else f"a {type(value).__name__}"
