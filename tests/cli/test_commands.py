"""Daily operation from the command line: --config (or BYOK_CONFIG) on every
command, `byok status` and `byok reload` finding the proxy in its config,
base URLs that are probably wrong, and the environment in --help.  Real
processes, real sockets, the simulated upstream on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from byok.cli import _parser
from byok.cli.reload import describe
from byok.cli.remote import AdminError, locate
from byok.providers import base_url_problem

from .test_cli import byok, free_port, stop
from .test_keys_cli import Simulated

SRC = Path(__file__).resolve().parents[2] / "src"
ADMIN_KEY = "adm-cmd-ADMINKEY-4242"
KEYS = {"sk-cmd-ONE-1111": "one", "sk-cmd-TWO-2222": "two", "sk-cmd-THREE-3333": "three"}
SECRETS = [ADMIN_KEY, *KEYS]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Simulated]:
    with Simulated() as running:
        for secret, label in KEYS.items():
            running.simulator.add_key(secret, label)
        yield running


def config_text(port: int, upstream: str, labels: list[str], admin: str = ADMIN_KEY) -> str:
    keys = ", ".join(
        f'{{ key = "{secret}", label = "{label}" }}'
        for secret, label in KEYS.items()
        if label in labels
    )
    return (
        f'[server]\nport = {port}\nshutdown_grace = 1\nadmin_keys = ["{admin}"]\n'
        f'[providers.sim]\nkind = "openai"\nbase_url = "{upstream}/v1"\nkeys = [{keys}]\n'
        '[models.m]\ntargets = ["sim/up"]\n'
    )


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """`byok serve ARGS` with `env` added, until it answers /health; killed
    if the test leaves it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "byok", "serve", *args],
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_until_serving(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, process.communicate()[1]
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health").status_code == 200:
                return
        assert time.monotonic() < deadline, "byok serve did not start"
        time.sleep(0.1)


def admin_view(url: str) -> dict:
    reply = httpx.get(f"{url}/admin/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert reply.status_code == 200, reply.text
    return reply.json()


def labels(view: dict) -> set[str]:
    return {
        key["label"]
        for model in view["models"]
        for target in model["targets"]
        for key in target["keys"]
    }


def assert_no_secret(*texts: str) -> None:
    for secret in SECRETS:
        for text in texts:
            assert secret not in text


# ---- --help ----------------------------------------------------------------------

# read by byok, and listed in --help (the *_API_KEY(S) and *_BASE_URL names
# are built from a prefix, and the proxy variables read by the egress code)
ENVIRONMENT = [
    "OPENAI_API_KEY",
    "OPENAI_API_KEYS",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_KEYS",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "BYOK_CONFIG",
    "BYOK_ADMIN_KEY",
    "BYOK_NO_EXTENSIONS",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
]
# read as the conventions of a terminal, not as byok's settings
NOT_BYOK_SETTINGS = {"TERM"}
READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")


def test_help_lists_every_environment_variable_byok_reads():
    named = {
        match
        for path in [*(SRC / "byok").rglob("*.py"), *(SRC / "byok_core").rglob("*.py")]
        for match in READ.findall(path.read_text(encoding="utf-8"))
    }
    assert "BYOK_NO_EXTENSIONS" in named  # the scan finds what the code reads
    for command in (["--help"], ["serve", "--help"]):
        result = byok(*command)
        assert result.returncode == 0, result.stderr
        epilog = result.stdout.split("\nenvironment:\n", 1)[1]
        for name in [*ENVIRONMENT, *(named - NOT_BYOK_SETTINGS)]:
            assert re.search(rf"\b{name}\b", epilog), f"{name} is not in `byok {command}`"
        assert "https://api.openai.com/v1" in epilog  # OPENAI_BASE_URL's default
        assert "env:NAME" in epilog


# ---- --config everywhere ---------------------------------------------------------


def test_check_config_takes_config_as_every_command_does(tmp_path):
    config = tmp_path / "byok.toml"
    config.write_text(
        '[providers.openai]\nkeys = ["sk-cmd-secret"]\n[models.m]\ntargets = ["openai/gpt-4o"]\n'
    )
    runs = [
        byok("check-config", str(config)),  # positional, kept as an alias of --config
        byok("check-config", "--config", str(config)),
        byok("--config", str(config), "check-config"),
        byok("check-config", env={"BYOK_CONFIG": str(config)}),
        byok("check-config", str(config), "--config", str(config)),  # the same file twice
    ]
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert "model m: weighted_round_robin over openai/gpt-4o" in result.stdout
        assert result.stdout == runs[0].stdout
        assert result.stderr == ""
        assert "sk-cmd-secret" not in result.stdout
    other = tmp_path / "other.toml"
    both = byok("check-config", str(config), "--config", str(other))
    assert both.returncode == 2
    assert both.stderr.strip() == (
        f"byok check-config: two files given, {config} and --config {other}: give one"
    )
    flag_wins = byok("check-config", "--config", str(other), env={"BYOK_CONFIG": str(config)})
    assert flag_wins.returncode == 2
    assert f"{other}: file not found" in flag_wins.stderr
    # no file at all: the keys of the environment, as serve and keys check take them
    environment = byok("check-config", env={"OPENAI_API_KEY": "sk-cmd-secret"})
    assert environment.returncode == 0, environment.stderr
    assert "config: environment" in environment.stdout
    nothing = byok("check-config")
    assert nothing.returncode == 2
    assert "OPENAI_API_KEY" in nothing.stderr


def test_keys_check_and_serve_read_byok_config(tmp_path):
    config = tmp_path / "byok.toml"
    config.write_text('[providers.openai]\nkeys = ["sk-x"]\n[models.m]\ntargets = ["nowhere/x"]\n')
    for command in (["keys", "check"], ["serve"], []):
        result = byok(*command, env={"BYOK_CONFIG": str(config)})
        assert result.returncode == 2, command
        assert f"{config}: [models.m] targets[0]: no provider 'nowhere'" in result.stderr


# ---- base URLs without their version ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "base_url", "problem"),
    [
        ("openai", "https://api.openai.com/v1", None),
        ("openai_compatible", "http://127.0.0.1:11434/v1", None),
        ("openai_compatible", "https://openrouter.ai/api/v1", None),
        # Gemini's OpenAI layer: the version is not the last segment
        ("openai_compatible", "https://generativelanguage.googleapis.com/v1beta/openai", None),
        (
            "openai",
            "https://host",
            "base_url https://host has no /v1: OpenAI-style base URLs end in the API version, "
            "e.g. https://host/v1",
        ),
        (
            "openai_compatible",
            "https://host/api",
            "base_url https://host/api has no /v1: OpenAI-style base URLs end in the API "
            "version, e.g. https://host/api/v1",
        ),
        ("anthropic", "https://api.anthropic.com", None),
        (
            "anthropic",
            "https://api.anthropic.com/v1",
            "base_url https://api.anthropic.com/v1 ends in /v1: its base URL is the bare host, "
            "without /v1, e.g. https://api.anthropic.com",
        ),
    ],
)
def test_base_url_problem(kind, base_url, problem):
    assert base_url_problem(kind, base_url) == problem


def test_check_config_warns_about_a_base_url_without_its_version(tmp_path):
    config = tmp_path / "byok.toml"
    config.write_text(
        '[providers.bare]\nkind = "openai_compatible"\nbase_url = "https://llm.example"\n'
        'keys = ["sk-cmd-secret"]\n'
        '[providers.claude]\nkind = "anthropic"\nbase_url = "https://api.anthropic.com/v1"\n'
        'keys = ["sk-cmd-other"]\n'
        '[providers.right]\nkind = "openai"\nkeys = ["sk-cmd-third"]\n'
    )
    result = byok("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr  # a warning, not an error
    assert "provider bare: openai_compatible https://llm.example" in result.stdout
    assert result.stderr.splitlines() == [
        "warning: [providers.bare] base_url https://llm.example has no /v1: OpenAI-style "
        "base URLs end in the API version, e.g. https://llm.example/v1",
        "warning: [providers.claude] base_url https://api.anthropic.com/v1 ends in /v1: "
        "its base URL is the bare host, without /v1, e.g. https://api.anthropic.com",
    ]
    environment = byok(
        "check-config",
        env={"OPENAI_API_KEY": "sk-cmd-secret", "OPENAI_BASE_URL": "https://llm.example"},
    )
    assert environment.returncode == 0, environment.stderr
    assert environment.stderr.startswith(
        "warning: OPENAI_BASE_URL base_url https://llm.example has no /v1"
    )


def test_serve_logs_the_base_url_warning_at_start_and_at_reload(tmp_path, upstream):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "byok.toml"
    config.write_text(config_text(port, upstream.url, ["one"]).replace("/v1", ""))
    with serving("--config", str(config)) as process:
        wait_until_serving(process, url)
        reloaded = byok("reload", "--config", str(config))
        assert reloaded.returncode == 0, reloaded.stderr
        stderr = stop(process)
    warning = f"[providers.sim] base_url {upstream.url} has no /v1: OpenAI-style base URLs"
    lines = [line for line in stderr.splitlines() if warning in line]
    assert len(lines) == 2, stderr  # at start, and again when the file is read anew
    assert all(" WARNING byok.config " in line for line in lines)
    assert stderr.index(warning) < stderr.index("listening on")
    assert_no_secret(stderr)


# ---- byok status and byok reload: the proxy from its config ----------------------


def test_locate_finds_the_proxy_and_its_admin_key_in_the_config(tmp_path):
    config = tmp_path / "byok.toml"

    def found(server: str, *args: str | None, **env: str) -> tuple[str, str | None]:
        config.write_text(server + '[providers.openai]\nkeys = ["env:NOT_SET_ANYWHERE"]\n')
        proxy = locate(str(config), *args, environ=env)
        return proxy.url, proxy.admin_key

    # a proxy on every address is asked on loopback; the upstream key's
    # variable is not set here, and is never looked at
    assert found('[server]\nhost = "0.0.0.0"\nport = 9001\n') == ("http://127.0.0.1:9001", None)
    assert found('[server]\nhost = "::"\nport = 9002\n')[0] == "http://[::1]:9002"
    assert found('[server]\nhost = "::1"\nport = 9003\n')[0] == "http://[::1]:9003"
    assert found("") == ("http://127.0.0.1:8787", None)  # the proxy's defaults
    with_keys = '[server]\nport = 9004\nadmin_keys = ["adm-first", "adm-second"]\n'
    assert found(with_keys) == ("http://127.0.0.1:9004", "adm-first")
    assert found(with_keys, BYOK_ADMIN_KEY="adm-env") == ("http://127.0.0.1:9004", "adm-env")
    assert found(with_keys, "http://10.9.8.7:1/", "adm-flag", BYOK_ADMIN_KEY="adm-env") == (
        "http://10.9.8.7:1",
        "adm-flag",
    )
    from_env = '[server]\nport = 9005\nadmin_keys = ["env:CMD_ADMIN"]\n'
    assert found(from_env, CMD_ADMIN=" adm-from-env ")[1] == "adm-from-env"
    with pytest.raises(AdminError) as unset:
        found(from_env)
    assert str(unset.value) == (
        f"{config}: [server] admin_keys[0] is env:CMD_ADMIN, which is not set here: "
        "set CMD_ADMIN or BYOK_ADMIN_KEY, or pass --admin-key KEY"
    )
    key_file = tmp_path / "admin-key"
    key_file.write_text("adm-from-file\n")
    assert found(f'[server]\nadmin_keys = ["file:{key_file}"]\n')[1] == "adm-from-file"
    with pytest.raises(AdminError, match=r"port is 0 \(any free port\): pass --url"):
        found("[server]\nport = 0\n")
    with pytest.raises(AdminError, match=r"\[server\] port: expected a port from 1 to 65535"):
        found('[server]\nport = "8787"\n')
    with pytest.raises(AdminError, match="not valid TOML"):
        found("[server\n")
    # the rest of the file may be wrong: the proxy judges it, the command asks it
    assert found("[server]\nport = 9006\n[models.m]\ntargets = 3\n")[0] == "http://127.0.0.1:9006"


def test_status_finds_the_proxy_and_admin_key_in_its_config(tmp_path, upstream):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "byok.toml"
    # the upstream key and the admin key come from variables that only the
    # proxy's environment has; `byok status` gets the admin key's alone
    text = config_text(port, upstream.url, ["one"], admin="env:CMD_ADMIN")
    config.write_text(text.replace('"sk-cmd-ONE-1111"', '"env:CMD_UPSTREAM"'))
    proxy_env = {"CMD_ADMIN": ADMIN_KEY, "CMD_UPSTREAM": "sk-cmd-ONE-1111"}
    with serving("--config", str(config), env=proxy_env) as process:
        wait_until_serving(process, url)
        by_flag = byok("status", "--config", str(config), env={"CMD_ADMIN": ADMIN_KEY})
        by_env = byok("status", env={"CMD_ADMIN": ADMIN_KEY, "BYOK_CONFIG": str(config)})
        wrong = byok(
            "status",
            "--config",
            str(config),
            env={"CMD_ADMIN": ADMIN_KEY, "BYOK_ADMIN_KEY": "adm-cmd-wrong"},
        )
        unset = byok("status", "--config", str(config))
        stop(process)
    for result in (by_flag, by_env):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"config: {config}, generation 1")
        assert re.search(r"^\s+one\s+ready\s", result.stdout, re.MULTILINE), result.stdout
    assert wrong.returncode == 2
    assert wrong.stderr == (
        f"byok status: {url} refused the admin key (401) given by BYOK_ADMIN_KEY: pass "
        "--admin-key KEY or set BYOK_ADMIN_KEY with one of the admin_keys of the proxy's "
        "config\n"
    )
    assert unset.returncode == 2
    assert "admin_keys[0] is env:CMD_ADMIN, which is not set here" in unset.stderr
    assert_no_secret(by_flag.stdout, by_env.stdout, wrong.stderr, unset.stderr)


def test_reload_swaps_in_the_edited_file_and_refuses_a_bad_one(tmp_path, upstream):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "byok.toml"
    config.write_text(config_text(port, upstream.url, ["one", "two"]))
    with serving("--config", str(config)) as process:
        wait_until_serving(process, url)
        assert labels(admin_view(url)) == {"one", "two"}

        config.write_text(config_text(port, upstream.url, ["one", "three"]))
        good = byok("reload", "--config", str(config))  # the admin key from the file
        view = admin_view(url)
        assert labels(view) == {"one", "three"}
        assert view["config"]["generation"] == 2

        config.write_text(config.read_text().replace('"sim/up"', '"nowhere/up"'))
        bad = byok("reload", env={"BYOK_CONFIG": str(config)})
        after = admin_view(url)
        assert after["config"]["generation"] == 2  # the bad file changed nothing
        assert labels(after) == {"one", "three"}
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=ask).status_code == 200
        stderr = stop(process)
    assert good.returncode == 0, good.stderr
    assert good.stdout == f"reloaded {config}: generation 2; keys: 1 kept, 1 new, 1 removed\n"
    assert good.stderr == ""
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert bad.stdout == ""
    assert bad.stderr == (
        f"byok reload: reload refused, nothing changed: {config}: [models.m] targets[0]: "
        "no provider 'nowhere'; known: sim\n"
    )
    assert "config reloaded" in stderr  # the proxy's own account of it
    assert_no_secret(good.stdout, good.stderr, bad.stderr, stderr)


def test_reload_says_why_it_could_not_ask(tmp_path):
    nobody = f"http://127.0.0.1:{free_port()}"
    result = byok("reload", "--url", nobody, "--admin-key", ADMIN_KEY)
    assert result.returncode == 2
    assert result.stderr == f"byok reload: nothing answers at {nobody}: is byok serve running?\n"
    config = tmp_path / "byok.toml"
    config.write_text('[server]\nadmin_keys = ["env:CMD_RELOAD_ADMIN"]\n')
    unset = byok("reload", "--config", str(config))
    assert unset.returncode == 2
    assert unset.stderr == (
        f"byok reload: {config}: [server] admin_keys[0] is env:CMD_RELOAD_ADMIN, which is "
        "not set here: set CMD_RELOAD_ADMIN or BYOK_ADMIN_KEY, or pass --admin-key KEY\n"
    )
    missing = byok("reload", "--config", str(tmp_path / "gone.toml"))
    assert missing.returncode == 2
    assert missing.stderr == f"byok reload: {tmp_path / 'gone.toml'}: file not found\n"


def test_reload_summary_names_settings_that_need_a_restart():
    summary = {
        "reloaded": True,
        "generation": 4,
        "source": "byok.toml",
        "kept_keys": 5,
        "new_keys": 1,
        "removed_keys": 0,
        "restart_needed": ["host", "port"],
    }
    assert describe(summary) == (
        "reloaded byok.toml: generation 4; keys: 5 kept, 1 new, 0 removed\n"
        "restart needed: [server] host, port changed, which a reload does not apply"
    )
    assert "\n" not in describe({**summary, "restart_needed": []})
    assert describe({**summary, "restart_needed": ["port", "[usage]"]}).endswith(
        "restart needed: [server] port; [usage] changed, which a reload does not apply"
    )
    assert describe({**summary, "restart_needed": ["[usage]"]}).endswith(
        "restart needed: [usage] changed, which a reload does not apply"
    )


def test_the_readme_operating_commands_are_byok_commands():
    """Each `byok` line of the README's "Operating it" block is accepted by
    the parser, as written."""
    readme = (SRC.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].split() for line in block.splitlines()]
    commands = [words[1:] for words in commands if words[:1] == ["byok"]]
    assert ["reload"] in commands
    assert not any("pkill" in line for line in block.splitlines())
    for words in commands:
        args = _parser().parse_args(words)  # SystemExit on an unknown command or option
        assert args.command == words[0]
