"""`byok serve --workers N` as an operator runs it: a supervisor and its
workers as real processes on one port of 127.0.0.1, the simulated upstream
behind them, the official SDK as the client."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import openai
import pytest

from byok_core import HealthSegment

from ..cli.test_cli import byok
from ..cli.test_exits import one_line
from .group import (
    ADMIN,
    KEYS,
    MESSAGES,
    answered,
    chat,
    client,
    config_text,
    from_each,
    generation,
    group,
    keys,
    linux_only,
    segment_of,
    wait_until,
)

ONE, TWO, THREE = KEYS

pytestmark = linux_only


def test_two_workers_serve_one_port(tmp_path, simulated):
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one", "two"]))
    with group(config) as workers:
        oai = client(workers.url)
        replies = from_each(lambda: chat(oai), lambda reply: True)
        for reply in replies.values():
            assert reply.parse().choices[0].message.content.startswith("Hello from ")
        assert len(set(workers.pids.values())) == 2  # two processes, not one answering twice
        name = segment_of(workers.pids[0])
        assert segment_of(workers.pids[1]) == name
        with HealthSegment.attach(name) as segment:
            assert segment.used == 2  # the pool's two keys, one record each for both workers
        workers.process.send_signal(signal.SIGTERM)
        workers.process.wait(timeout=30)
        stderr = workers.err.rest()
    assert workers.process.returncode == 0, stderr
    with pytest.raises(FileNotFoundError):
        HealthSegment.attach(name)  # the supervisor removed it
    assert stderr.count("listening on") == 1  # the supervisor's, for the group
    assert stderr.count("SIGTERM: draining requests in flight") == 2  # each worker drained
    assert "Traceback" not in stderr
    for secret in KEYS:
        assert secret not in stderr


def test_a_killed_worker_starts_again_while_the_other_takes_every_connection(tmp_path, simulated):
    """kill -9 of a worker under load: the requests it was serving fail
    (their connections die with it), every request that began once it was
    gone succeeds (the other worker holds the port), and the supervisor
    starts it again."""
    simulated.simulator.set(ONE, delay=0.02)  # requests in flight at the kill
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one"]))
    with group(config) as workers:
        records: list[tuple[float, int | None]] = []  # (began, worker; None: it failed)
        stop = threading.Event()

        def load() -> None:
            oai = client(workers.url)
            while not stop.is_set():
                began = time.monotonic()
                try:
                    records.append((began, answered(chat(oai))))
                except openai.APIError:
                    records.append((began, None))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: {w for _, w in records} >= {0, 1}, "both workers under load")
            victim = workers.pids[0]
            os.kill(victim, signal.SIGKILL)
            workers.line(
                rf"worker 0 \(pid {victim}\) was killed by SIGKILL; starting it again in 0.5s",
                "the crash, said once",
            )
            gone = time.monotonic()
            reborn = workers.started(0)
            wait_until(
                lambda: any(w == 0 and began > gone for began, w in records),
                "the new worker 0 serving",
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        workers.process.send_signal(signal.SIGTERM)
        workers.process.wait(timeout=30)
        stderr = workers.err.rest()
    assert reborn != victim
    after = [w for began, w in records if began > gone]
    assert None not in after, f"{after.count(None)} of {len(after)} failed after the kill"
    assert set(after) == {0, 1}
    assert stderr.count("was killed by SIGKILL") == 1
    assert workers.process.returncode == 0, stderr


def test_sighup_and_an_admin_reload_reach_every_worker(tmp_path, simulated):
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one", "two"]))
    with group(config) as workers:
        from_each(lambda: keys(workers.url), lambda reply: generation(reply) == 1)

        config.write_text(config_text(simulated.upstream_url, ["one", "two", "three"]))
        workers.process.send_signal(signal.SIGHUP)
        replies = from_each(lambda: keys(workers.url), lambda reply: generation(reply) == 2)
        for reply in replies.values():
            labels = [k["label"] for k in reply.json()["models"][0]["targets"][0]["keys"]]
            assert labels == ["one", "two", "three"]

        # a bad file: said once by the supervisor, and no worker is told
        config.write_text(config.read_text().replace('"sim/up"', '"nowhere/up"'))
        workers.process.send_signal(signal.SIGHUP)
        workers.line(
            r"reload refused, nothing changed in any worker: .*no provider 'nowhere'",
            "the refusal",
        )

        # POST /admin/reload, which one worker answers, reloads them all
        config.write_text(config_text(simulated.upstream_url, ["one"]))
        reply = httpx.post(f"{workers.url}/admin/reload", headers=ADMIN, timeout=20)
        assert reply.status_code == 200, reply.text
        assert reply.json()["generation"] == 3
        workers.line(rf"worker {answered(reply)} reloaded its config: the others reload too", "")
        from_each(lambda: keys(workers.url), lambda reply: generation(reply) == 3)

        workers.process.send_signal(signal.SIGTERM)
        workers.process.wait(timeout=30)
        stderr = workers.err.rest()
    assert workers.process.returncode == 0, stderr
    assert stderr.count("reload refused") == 1  # the supervisor's: no worker read the bad file
    assert stderr.count("config reloaded from") == 4  # two workers, two reloads
    for secret in [*KEYS, ADMIN["authorization"][7:]]:
        assert secret not in stderr


def test_sigterm_drains_every_worker_and_a_stream_in_flight_finishes(tmp_path, simulated):
    simulated.simulator.set(ONE, chunks=6, chunk_delay=0.3)
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one"]))
    with group(config) as workers:
        stream = client(workers.url).chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        )
        chunks = iter(stream)
        first = next(chunks)  # the stream is under way
        workers.process.send_signal(signal.SIGTERM)
        workers.line("SIGTERM: stopping 2 workers; each drains its requests in flight", "")
        rest = list(chunks)
        workers.process.wait(timeout=30)
        stderr = workers.err.rest()
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "Hello from one word word word"
    assert rest[-1].choices[0].finish_reason == "stop"
    assert workers.process.returncode == 0, stderr
    assert stderr.count("SIGTERM: draining requests in flight for up to 10s") == 2
    assert "Traceback" not in stderr


def test_a_second_signal_ends_every_drain_at_once(tmp_path, simulated):
    simulated.simulator.set(ONE, mode="hang")
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one"], shutdown_grace=60))
    with group(config) as workers:
        failed: list[BaseException] = []

        def ask() -> None:
            try:
                chat(client(workers.url))
            except openai.APIError as error:
                failed.append(error)

        asking = threading.Thread(target=ask)
        asking.start()
        wait_until(lambda: simulated.simulator.requests_for(ONE) == 1, "the request upstream")
        workers.process.send_signal(signal.SIGTERM)
        workers.line("SIGTERM: stopping 2 workers", "the stop")
        workers.process.send_signal(signal.SIGINT)
        workers.process.wait(timeout=30)
        stderr = workers.err.rest()
        asking.join(timeout=30)
    assert workers.process.returncode == 128 + signal.SIGINT
    assert stderr.strip().splitlines()[-1] == "byok serve: stopped by SIGINT"
    assert "Traceback" not in stderr
    assert len(failed) == 1  # the client saw its connection end, not an answer


def test_workers_drain_and_free_the_port_when_the_supervisor_is_gone(tmp_path, simulated):
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one"]))
    with group(config) as workers:
        name = segment_of(workers.pids[0])
        workers.process.kill()
        workers.process.wait(timeout=30)
        workers.err.until(
            lambda line: "the supervisor is gone: draining" in line, "a worker draining"
        )
        workers.err.until(
            lambda line: "the supervisor is gone: draining" in line, "the other worker draining"
        )

        def free() -> bool:
            with socket.socket() as listener:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    listener.bind(("127.0.0.1", workers.port))
                except OSError:
                    return False
                listener.listen()
                return True

        wait_until(free, "the workers still hold the port")
    with pytest.raises(FileNotFoundError):
        HealthSegment.attach(name)  # a worker removed it in the supervisor's place


def test_a_port_in_use_is_one_line(busy_port):
    result = byok(
        "serve", "--workers", "2", "--port", str(busy_port), env={"OPENAI_API_KEY": "sk-busy-3"}
    )
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"byok: cannot listen on 127.0.0.1:{busy_port}: the address is in use "
        "(another byok?); pick another with --port"
    )


@pytest.mark.parametrize("workers", ["2", "1"], ids=["another-group", "a-single-byok"])
def test_a_group_port_is_not_shared_with_another_byok(tmp_path, simulated, workers):
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one"]))
    with group(config) as running:
        result = byok(
            "serve",
            "--workers",
            workers,
            "--port",
            str(running.port),
            env={"OPENAI_API_KEY": "sk-busy-4"},
        )
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            f"byok: cannot listen on 127.0.0.1:{running.port}: the address is in use "
            "(another byok?); pick another with --port"
        )
        assert keys(running.url).status_code == 200  # the group serves on


@pytest.mark.parametrize("value", ["0", "-2", "many", "2.5", "5000"])
def test_a_bad_number_of_workers_is_one_line(value):
    result = byok("serve", "--workers", value, env={"OPENAI_API_KEY": "sk-count-1"})
    assert result.returncode == 2
    cores = os.cpu_count() or 1
    assert one_line(result.stderr) == (
        f"byok serve: --workers {value}: give a number of processes, 1 to 1024, "
        f"or auto (one per core: {cores} here)"
    )


def test_a_config_warning_is_said_once_for_the_group(tmp_path, simulated):
    """Worker 0 alone says what looks wrong in the config: at start, and
    at each reload, which every worker does."""
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one"]).replace("/v1", ""))
    with group(config) as workers:
        workers.process.send_signal(signal.SIGHUP)
        from_each(lambda: keys(workers.url), lambda reply: generation(reply) == 2)
        workers.process.send_signal(signal.SIGTERM)
        workers.process.wait(timeout=30)
        stderr = workers.err.rest()
    assert workers.process.returncode == 0, stderr
    assert stderr.count("has no /v1") == 2, stderr
