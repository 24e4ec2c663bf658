"""How a replica applies what another one decided, event by event, with no
Redis in the way: the rules of byok.cluster's docstring, one test each."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import trio

from byok.cluster import KeyEvent, Replica, _replica
from byok.config import from_dict
from byok.gateway.runtime import Live

from .fleet import SECRETS, tables

POOL = "sim/up"


def replica(**models: Any) -> Replica:
    data = tables("http://127.0.0.1:9", "redis://127.0.0.1:9/0", "apply", "here")
    data["models"].update(models)
    config = from_dict(data, "test")
    assert config.cluster is not None
    return Replica(Live(config), config.cluster)


def fingerprint(here: Replica, label: str) -> str:
    return next(
        k.fingerprint for k in here.live.runtime.config.providers["sim"].keys if k.label == label
    )


def event(here: Replica, label: str, state: str, why: str, **fields: Any) -> KeyEvent:
    return KeyEvent(
        replica="there",
        provider="sim",
        label=label,
        fingerprint=fields.pop("fingerprint", None) or fingerprint(here, label),
        scope=fields.pop("scope", "*"),
        state=state,
        why=why,
        at=time.time(),
        **fields,
    )


def cooldown(here: Replica, label: str, seconds: float, **fields: Any) -> KeyEvent:
    fields.setdefault("scope", POOL)
    return event(
        here,
        label,
        "cooldown",
        "cooled",
        until=time.time() + seconds,
        cause="rate_limited",
        **fields,
    )


def message(data: str) -> Any:
    return {"type": "message", "pattern": None, "channel": "apply:events", "data": data}


def state(here: Replica, label: str, pool: str = "up") -> str:
    selector = here.live.runtime.router.pool("sim", pool).selector
    return str(selector.state(label, now=trio.current_time()))


def remaining(here: Replica, label: str) -> float:
    selector = here.live.runtime.router.pool("sim", "up").selector
    view = next(v for v in selector.snapshot(now=trio.current_time()) if v["id"] == label)
    return float(view["cooldown_remaining"])


async def test_a_cooldown_holds_for_the_time_left_on_this_clock():
    here = replica()
    assert here.apply(cooldown(here, "alpha", 120))
    assert state(here, "alpha") == "cooldown"
    assert 119 < remaining(here, "alpha") <= 120
    assert not here.apply(cooldown(here, "alpha", -1))  # over already: nothing to do


async def test_a_cooldown_never_shortens_one_in_force():
    here = replica()
    assert here.apply(cooldown(here, "alpha", 300))
    assert not here.apply(cooldown(here, "alpha", 60))
    assert remaining(here, "alpha") > 290
    assert here.apply(cooldown(here, "alpha", 600))  # a longer one extends it
    assert remaining(here, "alpha") > 590


async def test_a_cooldown_never_covers_a_blocked_or_disabled_key():
    here = replica()
    assert here.apply(event(here, "alpha", "disabled", "disabled"))
    assert here.apply(event(here, "bravo", "blocked", "blocked"))
    assert not here.apply(cooldown(here, "alpha", 300))
    assert not here.apply(cooldown(here, "bravo", 300))
    assert (state(here, "alpha"), state(here, "bravo")) == ("disabled", "blocked")


async def test_a_block_never_covers_a_disable_and_a_disable_covers_a_block():
    here = replica()
    assert here.apply(event(here, "alpha", "disabled", "disabled"))
    assert not here.apply(event(here, "alpha", "blocked", "blocked"))
    assert state(here, "alpha") == "disabled"
    assert here.apply(event(here, "bravo", "blocked", "blocked"))
    assert here.apply(event(here, "bravo", "disabled", "disabled"))
    assert state(here, "bravo") == "disabled"


async def test_a_block_is_asked_again_here_too():
    here = replica()
    assert here.live.revalidator.next_check("sim", "alpha") is None
    assert here.apply(event(here, "alpha", "blocked", "blocked"))
    due = here.live.revalidator.next_check("sim", "alpha")
    assert due is not None
    assert due - trio.current_time() > 60  # revalidate_blocked: the default 900 s


async def test_an_operator_restore_wins_over_everything():
    here = replica()
    here.apply(cooldown(here, "alpha", 300))
    here.apply(event(here, "bravo", "blocked", "blocked"))
    here.apply(event(here, "charlie", "disabled", "disabled"))
    for label in ("alpha", "bravo", "charlie"):
        assert here.apply(event(here, label, "ready", "restored"))
        assert state(here, label) == "ready"
    assert not here.apply(event(here, "alpha", "ready", "restored"))  # ready already


async def test_enable_undoes_a_disable_and_re_validation_a_block_nothing_else():
    here = replica()
    here.apply(cooldown(here, "alpha", 300))
    here.apply(event(here, "bravo", "blocked", "blocked"))
    here.apply(event(here, "charlie", "disabled", "disabled"))
    for label in ("alpha", "bravo"):
        assert not here.apply(event(here, label, "ready", "enabled"))
    assert not here.apply(event(here, "charlie", "ready", "revalidated"))
    assert not here.apply(event(here, "alpha", "ready", "revalidated"))
    assert (state(here, "alpha"), state(here, "bravo"), state(here, "charlie")) == (
        "cooldown",
        "blocked",
        "disabled",
    )
    assert here.apply(event(here, "charlie", "ready", "enabled"))
    assert here.apply(event(here, "bravo", "ready", "revalidated"))
    assert (state(here, "bravo"), state(here, "charlie")) == ("ready", "ready")


async def test_a_cooldown_holds_in_its_own_pool_only_a_block_in_every_pool():
    here = replica(other={"targets": ["sim/other-model"]})
    assert here.apply(cooldown(here, "alpha", 300))
    assert (state(here, "alpha"), state(here, "alpha", "other-model")) == ("cooldown", "ready")
    assert here.apply(event(here, "bravo", "blocked", "blocked"))
    assert state(here, "bravo", "other-model") == "blocked"


async def test_a_label_that_names_another_secret_here_is_another_key():
    here = replica()
    assert not here.apply(cooldown(here, "alpha", 300, fingerprint="fp-00000000"))
    assert not here.apply(event(here, "bravo", "disabled", "disabled", fingerprint="fp-1"))
    assert not here.apply(cooldown(here, "nobody", 300, fingerprint="fp-2"))
    assert (state(here, "alpha"), state(here, "bravo")) == ("ready", "ready")


async def test_its_own_events_coming_back_are_ignored():
    here = replica()
    theirs = cooldown(here, "alpha", 300)
    mine = msgspec.structs.replace(theirs, replica=here.name)
    here._on_message(message(msgspec.json.encode(mine).decode()))
    assert state(here, "alpha") == "ready"
    here._on_message(message(msgspec.json.encode(theirs).decode()))
    assert state(here, "alpha") == "cooldown"


async def test_a_message_that_is_no_key_event_is_ignored_with_a_line(caplog):
    here = replica()
    here._on_message(message('{"nope": 1}'))
    here._on_message(message("not json"))
    here._on_message({"type": "subscribe", "pattern": None, "channel": "apply:events", "data": 1})
    assert [r.getMessage() for r in caplog.records].count(
        "cluster: a message on apply:events is no key event; ignored"
    ) == 2
    assert all(state(here, label) == "ready" for label in SECRETS.values())


async def test_a_deadline_beyond_the_engine_is_refused_with_a_line(caplog):
    here = replica()
    assert not here.apply(cooldown(here, "alpha", 1e12))
    assert state(here, "alpha") == "ready"
    assert "an event of replica there ignored" in caplog.text


async def test_what_this_replica_decides_becomes_an_event_in_its_queue():
    here = replica()
    pool = here.live.runtime.router.pool("sim", "up")
    now = trio.current_time()
    pool.selector.report_rate_limited("alpha", retry_after=120, now=now)
    here.live.key_listeners.append(here.key_changed)
    here.live.key_changed("sim", "alpha", pool, "cooled")
    here.live.key_changed("sim", "bravo", None, "disabled")
    here.live.key_changed("sim", "charlie", pool, "ready")  # a probe's success: not shared
    first, second = here._receive.receive_nowait(), here._receive.receive_nowait()
    assert (first.state, first.scope, first.cause, first.replica) == (
        "cooldown",
        POOL,
        "rate_limited",
        here.name,
    )
    assert first.until is not None
    assert 119 < first.until - time.time() <= 120
    assert first.fingerprint == fingerprint(here, "alpha")
    assert (second.state, second.scope, second.why) == ("disabled", "*", "disabled")
    with_nothing_more = here._receive.statistics().current_buffer_used
    assert with_nothing_more == 0


async def test_a_full_queue_drops_and_counts_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(_replica, "QUEUE_SIZE", 2)
    here = replica()
    for _ in range(5):
        here.key_changed("sim", "bravo", None, "disabled")
    page = here.live.runtime.metrics.render().decode()
    assert "byok_cluster_events_dropped_total 3.0" in page
    said = [r.getMessage() for r in caplog.records if r.name == "byok.cluster"]
    assert said == [
        "cluster: 2 key events wait for Redis; dropping more until it is back "
        "(every key state is published again then)"
    ]


async def test_a_state_learned_from_the_cluster_ends_when_redis_no_longer_holds_it(caplog):
    """After a sync: a block or disable that came from another replica, and
    that Redis no longer holds, was lifted while this replica could not hear
    it.  One decided here stays until it is lifted here."""
    here = replica()
    disabled = event(here, "bravo", "disabled", "disabled")
    here.apply(disabled)
    here.apply(event(here, "charlie", "blocked", "blocked"))
    pool = here.live.runtime.router.pool("sim", "up")
    pool.selector.disable("alpha")
    here.key_changed("sim", "alpha", None, "disabled")  # this replica's own operator
    held = msgspec.json.encode({"*": disabled}).decode()
    assert here._load([held]) == 1  # charlie: no longer blocked anywhere
    assert (state(here, "alpha"), state(here, "bravo"), state(here, "charlie")) == (
        "disabled",
        "disabled",
        "ready",
    )
    assert "key charlie (fp-" in caplog.text
    assert "no longer blocked in the cluster; now ready" in caplog.text
    assert here._load([]) == 1  # and now bravo, whose disable Redis no longer holds
    assert (state(here, "alpha"), state(here, "bravo")) == ("disabled", "ready")
