"""The configuration: read from a TOML file, or built from the environment.

Everything is checked up front and turned into frozen dataclasses; an error
names the file, the table and the field, and says what was expected.  Secrets
(upstream keys, client keys) are resolved here from literals, ``env:NAME`` or
``file:PATH`` and from then on travel only inside ``Key`` objects, whose
``repr`` shows a label and a fingerprint, never the value.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byok_core import STRATEGIES

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
    """Takes every secret of a config, and key-shaped tokens, out of a text
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

    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first: a secret that contains another is replaced whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets_utf8 = [s.encode("utf-8") for s in self._secrets]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return _KEY_SHAPED.sub("[redacted]", text)

    # before the method named bytes: an annotation after it would mean the method
    def _suspect(self, data: bytes) -> bool:
        """False when `data` surely holds no secret and no key-shaped token."""
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
    secret: str = field(repr=False)
    weight: int = 1
    max_inflight: int = 0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)

    def __repr__(self) -> str:
        return f"Key({self.label!r}, {self.fingerprint})"


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

    @property
    def spec(self) -> ProviderKind:
        """What byok knows about this kind of provider (byok.providers)."""
        return KINDS[self.kind]

    @property
    def dialect(self) -> str:
        return self.spec.dialect


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # upstream attempts per request, over all keys, targets, fallbacks
    attempt_timeout: float = 600.0  # one attempt, from send to the last byte
    first_byte_timeout: float = 60.0  # send to response headers
    deadline: float = 900.0  # the whole request, retries included
    stream_idle_timeout: float = 120.0  # longest silence inside a stream
    hedge_after: float | None = None  # off: no second racing attempt
    wait_for_cooldown: float = 0.0  # off: fail at once when every key cools


@dataclass(frozen=True)
class Target:
    provider: str
    model: str  # the upstream model name


@dataclass(frozen=True)
class Model:
    name: str
    targets: tuple[Target, ...]
    strategy: str = "weighted_round_robin"
    fallbacks: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 8787
    client_keys: tuple[Key, ...] = ()
    admin_keys: tuple[Key, ...] = ()  # none: the admin API is off
    max_body_bytes: int = 32 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    read_timeout: float = 60.0  # a request's head and body must arrive within this
    idle_timeout: float = 75.0  # a keep-alive connection with no request closes
    shutdown_grace: float = 30.0  # in-flight requests get this long on SIGINT/SIGTERM
    cooldown: float = 1.0  # engine: first backoff step
    max_cooldown: float = 15.0  # a recovered key is back within this
    failure_threshold: int = 3  # unexplained failures in a row that open the circuit
    failure_rate: float = 0.5  # or this share of failures in the window (0: off)
    failure_rate_window: float = 30.0
    failure_rate_min_attempts: int = 10  # in the window, before the share is judged
    revalidate_blocked: float = 900.0  # seconds between checks of a blocked key (0: never)


@dataclass(frozen=True)
class Config:
    source: str
    server: Server
    providers: Mapping[str, Provider]
    models: Mapping[str, Model]

    def secrets(self) -> list[str]:
        """Every secret this config holds: upstream, client and admin keys."""
        keys = [*self.server.client_keys, *self.server.admin_keys]
        keys += [k for p in self.providers.values() for k in p.keys]
        return [k.secret for k in keys]

    def describe(self) -> str:
        """The resolved routes, for `byok check-config`: labels, no secrets."""
        lines = [f"config: {self.source}", f"listen: http://{self.server.host}:{self.server.port}"]
        auth = (
            f"{len(self.server.client_keys)} client key(s)" if self.server.client_keys else "none"
        )
        lines.append(f"client auth: {auth}")
        admin = len(self.server.admin_keys)
        lines.append(f"admin API: {f'{admin} admin key(s)' if admin else 'off (no admin_keys)'}")
        for p in self.providers.values():
            keys = ", ".join(f"{k.label} ({k.fingerprint}, weight {k.weight})" for k in p.keys)
            extra = ", passthrough" if p.passthrough else ""
            lines.append(f"provider {p.name}: {p.kind} {p.base_url}{extra}; keys: {keys}")
        for m in self.models.values():
            targets = ", ".join(f"{t.provider}/{t.model}" for t in m.targets)
            fallbacks = f"; fallbacks: {', '.join(m.fallbacks)}" if m.fallbacks else ""
            lines.append(f"model {m.name}: {m.strategy} over {targets}{fallbacks}")
        return "\n".join(lines)


# ---- loading -------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Config:
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
    return from_dict(data, source)


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
    data: Mapping[str, Any], source: str = "<dict>", environ: Mapping[str, str] | None = None
) -> Config:
    """A configuration from the parsed TOML shape (tests and `byok demo` build one)."""
    reader = _Reader(source, os.environ if environ is None else environ)
    unknown = set(data) - {"server", "providers", "models"}
    if unknown:
        message = "unknown table; expected server, providers, models"
        raise ConfigError(source, "", sorted(unknown)[0], message)
    server = reader.server(_section(data, "server", source))
    providers = {
        name: reader.provider(name, _as_table(body, f"providers.{name}", source))
        for name, body in _section(data, "providers", source).items()
    }
    if not providers:
        raise ConfigError(source, "providers", "", "at least one provider is needed")
    models = {
        name: reader.model(name, _as_table(body, f"models.{name}", source), providers)
        for name, body in _section(data, "models", source).items()
    }
    for model in models.values():
        for fallback in model.fallbacks:
            if fallback not in models:
                raise ConfigError(
                    source,
                    f"models.{model.name}",
                    "fallbacks",
                    f"{fallback!r} is not a model in this file; known: {', '.join(models)}",
                )
    if not server.client_keys and server.host not in LOOPBACK_HOSTS:
        raise ConfigError(
            source,
            "server",
            "client_keys",
            f"no client keys while listening on {server.host}: anyone who can reach it "
            "could spend your keys; set client_keys or bind to 127.0.0.1",
        )
    return Config(source=source, server=server, providers=providers, models=models)


def _section(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    return _as_table(data.get(name, {}), name, source)


def _as_table(value: Any, table: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(source, table, "", f"expected a table, got {type(value).__name__}")
    return value


class _Reader:
    """Checks fields one table at a time, so that each error knows its place."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ

    def fail(self, table: str, field_name: str, message: str) -> ConfigError:
        return ConfigError(self.source, table, field_name, message)

    def get(
        self,
        body: Mapping[str, Any],
        table: str,
        name: str,
        kind: type | tuple[type, ...],
        default: Any,
        where: str = "",
    ) -> Any:
        """body[name] if it has the right type, else an error at `where`."""
        if name not in body:
            return default
        value = body[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(t.__name__ for t in kinds)
            # a string in the wrong place may be a key: its type says enough
            got = "a string" if isinstance(value, str) else repr(value)
            raise self.fail(table, where or name, f"expected {expected}, got {got}")
        return value

    def check_keys(self, body: Mapping[str, Any], table: str, allowed: set[str]) -> None:
        for name in body:
            if name not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.fail(table, name, f"unknown field; expected one of: {expected}")

    def seconds(
        self,
        body: Mapping[str, Any],
        table: str,
        name: str,
        default: float,
        *,
        allow_zero: bool = False,
    ) -> float:
        value = float(self.get(body, table, name, (int, float), default))
        if not (value > 0 or (allow_zero and value == 0)) or value > 1e8:
            low = "from 0" if allow_zero else "above 0"
            raise self.fail(table, name, f"expected seconds {low} to 1e8, got {value}")
        return value

    def count(
        self,
        body: Mapping[str, Any],
        table: str,
        name: str,
        default: int,
        minimum: int = 1,
        where: str = "",
    ) -> int:
        value = self.get(body, table, name, int, default, where)
        if value < minimum:
            raise self.fail(
                table, where or name, f"expected an integer of at least {minimum}, got {value}"
            )
        return int(value)

    def share(self, body: Mapping[str, Any], table: str, name: str, default: float) -> float:
        value = float(self.get(body, table, name, (int, float), default))
        if not 0 <= value <= 1:
            raise self.fail(table, name, f"expected a share from 0 to 1 (0: off), got {value}")
        return value

    def secret(self, value: Any, table: str, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
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

    def key_list(
        self, body: Mapping[str, Any], table: str, name: str, role: str
    ) -> tuple[Key, ...]:
        entries = self.get(body, table, name, list, [])
        return tuple(
            Key(label=f"{role}-{n + 1}", secret=self.secret(v, table, f"{name}[{n}]"))
            for n, v in enumerate(entries)
        )

    def server(self, body: Mapping[str, Any]) -> Server:
        table = "server"
        defaults = Server()
        self.check_keys(body, table, {f for f in Server.__dataclass_fields__})
        port = self.count(body, table, "port", defaults.port, minimum=0)
        if port > 65535:
            raise self.fail(table, "port", f"expected a port from 0 to 65535, got {port}")
        keys = self.key_list(body, table, "client_keys", "client")
        admin_keys = self.key_list(body, table, "admin_keys", "admin")
        client_secrets = {k.secret for k in keys}
        for n, key in enumerate(admin_keys):
            if key.secret in client_secrets:
                raise self.fail(
                    table,
                    f"admin_keys[{n}]",
                    "an admin key must differ from every client key: "
                    "a client could otherwise steer the proxy",
                )
        return Server(
            host=self.get(body, table, "host", str, defaults.host),
            port=port,
            client_keys=keys,
            admin_keys=admin_keys,
            max_body_bytes=self.count(body, table, "max_body_bytes", defaults.max_body_bytes),
            max_header_bytes=self.count(body, table, "max_header_bytes", defaults.max_header_bytes),
            max_headers=self.count(body, table, "max_headers", defaults.max_headers),
            read_timeout=self.seconds(body, table, "read_timeout", defaults.read_timeout),
            idle_timeout=self.seconds(body, table, "idle_timeout", defaults.idle_timeout),
            shutdown_grace=self.seconds(
                body, table, "shutdown_grace", defaults.shutdown_grace, allow_zero=True
            ),
            cooldown=self.seconds(body, table, "cooldown", defaults.cooldown),
            max_cooldown=self.seconds(body, table, "max_cooldown", defaults.max_cooldown),
            failure_threshold=self.count(
                body, table, "failure_threshold", defaults.failure_threshold
            ),
            failure_rate=self.share(body, table, "failure_rate", defaults.failure_rate),
            failure_rate_window=self.seconds(
                body, table, "failure_rate_window", defaults.failure_rate_window
            ),
            failure_rate_min_attempts=self.count(
                body, table, "failure_rate_min_attempts", defaults.failure_rate_min_attempts
            ),
            revalidate_blocked=self.seconds(
                body, table, "revalidate_blocked", defaults.revalidate_blocked, allow_zero=True
            ),
        )

    def provider(self, name: str, body: Mapping[str, Any]) -> Provider:
        table = f"providers.{name}"
        self.check_keys(
            body, table, {"kind", "base_url", "keys", "passthrough", "anthropic_version"}
        )
        kind = self.get(body, table, "kind", str, name if name in KINDS else None)
        if kind not in KINDS:
            raise self.fail(table, "kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        base_url = self.get(body, table, "base_url", str, KINDS[kind].default_base_url)
        if base_url is None:
            raise self.fail(
                table, "base_url", "required for openai_compatible providers (with /v1)"
            )
        if not base_url.startswith(("http://", "https://")):
            raise self.fail(
                table, "base_url", f"expected an http:// or https:// URL, got {base_url!r}"
            )
        entries = self.get(body, table, "keys", list, None)
        if not entries:
            raise self.fail(table, "keys", "at least one key is needed")
        keys: list[Key] = []
        for n, entry in enumerate(entries):
            where = f"keys[{n}]"
            if isinstance(entry, Mapping):
                self.check_keys(entry, table, {"key", "label", "weight", "max_inflight"})
                secret = self.secret(entry.get("key"), table, f"{where}.key")
                label = self.get(entry, table, "label", str, None, f"{where}.label")
                if label == "":
                    raise self.fail(table, f"{where}.label", "expected a non-empty label")
                weight = self.count(entry, table, "weight", 1, 1, f"{where}.weight")
                cap = self.count(entry, table, "max_inflight", 0, 0, f"{where}.max_inflight")
            else:
                secret, label, weight, cap = self.secret(entry, table, where), None, 1, 0
            keys.append(Key(label or f"{name}-{n + 1}", secret, weight, cap))
        labels = [k.label for k in keys]
        for label in labels:
            if labels.count(label) > 1:
                raise self.fail(
                    table, "keys", f"label {label!r} is used twice: a label names one key in logs"
                )
        secrets = [k.secret for k in keys]
        if len(set(secrets)) != len(secrets):
            raise self.fail(table, "keys", "the same key is listed twice")
        return Provider(
            name=name,
            kind=kind,
            base_url=base_url.rstrip("/"),
            keys=tuple(keys),
            passthrough=self.get(body, table, "passthrough", bool, False),
            anthropic_version=self.get(
                body, table, "anthropic_version", str, DEFAULT_ANTHROPIC_VERSION
            ),
        )

    def model(self, name: str, body: Mapping[str, Any], providers: Mapping[str, Provider]) -> Model:
        table = f"models.{name}"
        retry_fields = set(RetryPolicy.__dataclass_fields__)
        self.check_keys(body, table, {"targets", "strategy", "fallbacks"} | retry_fields)
        raw_targets = self.get(body, table, "targets", list, None)
        if not raw_targets:
            raise self.fail(
                table, "targets", 'at least one target is needed, like "openai/gpt-4o-mini"'
            )
        targets = []
        for n, raw in enumerate(raw_targets):
            provider, _, upstream = raw.partition("/") if isinstance(raw, str) else ("", "", "")
            if not provider or not upstream:
                raise self.fail(
                    table, f"targets[{n}]", f'expected "provider/upstream-model", got {raw!r}'
                )
            if provider not in providers:
                known = ", ".join(providers)
                raise self.fail(table, f"targets[{n}]", f"no provider {provider!r}; known: {known}")
            targets.append(Target(provider, upstream))
        strategy = self.get(body, table, "strategy", str, "weighted_round_robin")
        if strategy not in STRATEGIES:
            valid = ", ".join(STRATEGIES)
            raise self.fail(table, "strategy", f"expected one of {valid}, got {strategy!r}")
        fallbacks = self.get(body, table, "fallbacks", list, [])
        if not all(isinstance(f, str) for f in fallbacks):
            raise self.fail(table, "fallbacks", "expected a list of model names")
        d = RetryPolicy()
        hedge = body.get("hedge_after")
        retry = RetryPolicy(
            attempts=self.count(body, table, "attempts", d.attempts),
            attempt_timeout=self.seconds(body, table, "attempt_timeout", d.attempt_timeout),
            first_byte_timeout=self.seconds(
                body, table, "first_byte_timeout", d.first_byte_timeout
            ),
            deadline=self.seconds(body, table, "deadline", d.deadline),
            stream_idle_timeout=self.seconds(
                body, table, "stream_idle_timeout", d.stream_idle_timeout
            ),
            hedge_after=None if hedge is None else self.seconds(body, table, "hedge_after", 1.0),
            wait_for_cooldown=self.seconds(body, table, "wait_for_cooldown", 0.0, allow_zero=True),
        )
        return Model(name, tuple(targets), strategy, tuple(fallbacks), retry)
