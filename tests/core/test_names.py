"""States, causes, transitions and strategies are str enums (byok_core._names),
returned as the same module-level members by the compiled engine and its
twin; snapshot() rows are exactly the KeyView / MemberView TypedDicts."""

from __future__ import annotations

import json
import pickle
import random
import typing

import msgspec
import pytest

import byok_core
from byok_core import Cause, KeyView, LimitView, MemberView, State, Strategy, Transition

from .test_twins import BOTH, IDS, random_program

T = 1000.0
ENUMS = (State, Cause, Transition, Strategy)
MEMBERS = [member for enum in ENUMS for member in enum]


@pytest.mark.parametrize("member", MEMBERS, ids=repr)
def test_a_member_is_its_string(member):
    value = member.value
    assert type(value) is str
    assert isinstance(member, str)
    assert member == value
    assert value == member
    assert hash(member) == hash(value)
    assert {value: 1}[member] == 1
    assert {member: 1}[value] == 1
    assert str(member) == value
    assert f"{member}" == value
    assert f"{member:>20}" == f"{value:>20}"
    assert "%s" % member == value  # noqa: UP031 - logging formats this way
    assert ", ".join([member, member]) == f"{value}, {value}"
    assert json.dumps({member: member}) == json.dumps({value: value})
    assert msgspec.json.encode({member: member}) == msgspec.json.encode({value: value})
    assert pickle.loads(pickle.dumps(member)) is member
    assert type(member)(value) is member


def test_the_tuples_hold_the_members_in_code_order():
    assert byok_core.STATES == ("ready", "cooldown", "half_open", "blocked", "disabled")
    for names, enum in [
        (byok_core.STATES, State),
        (byok_core.TRANSITIONS, Transition),
        (byok_core.STRATEGIES, Strategy),
        (byok_core._args.CAUSES, Cause),
    ]:
        assert names == tuple(enum)
        assert [type(name) for name in names] == [enum] * len(enum)
    assert byok_core._args.CAUSES == ("rate_limited", "failing", "limited")


def test_the_names_are_exported():
    names = ("State", "Cause", "Transition", "Strategy", "KeyView", "MemberView", "LimitView")
    for name in (*names, "PoolView"):
        assert name in byok_core.__all__
        assert getattr(byok_core, name) is getattr(byok_core._names, name)


def test_a_selector_names_everything_with_members(impl):
    sel = impl.Selector(["a", "b"], strategy="priority", cooldown=1, failure_threshold=1)
    assert sel.strategy is Strategy.PRIORITY
    assert sel.state("a", now=T) is State.READY
    assert sel.report_success("a", now=T) is None
    assert sel.report_error("a", now=T) is Transition.OPENED
    assert sel.state("a", now=T) is State.COOLDOWN
    assert sel.report_rate_limited("b", retry_after=5, now=T) is Transition.COOLED
    rows = sel.snapshot(now=T)
    assert [(row["state"], row["cause"]) for row in rows] == [
        (State.COOLDOWN, Cause.FAILING),
        (State.COOLDOWN, Cause.RATE_LIMITED),
    ]
    assert [(type(row["state"]), type(row["cause"])) for row in rows] == [(State, Cause)] * 2
    assert sel.outlook(now=T) == (1.0, Cause.FAILING)
    assert sel.outlook(now=T)[1] is Cause.FAILING
    assert sel.state("a", now=T + 1) is State.HALF_OPEN
    assert sel.report_error("a", now=T + 1) is Transition.PROBE_FAILED
    assert sel.report_success("a", now=T + 3) is Transition.READY
    sel.block("a")
    assert sel.outlook(now=T + 3)[1] is Cause.RATE_LIMITED
    sel.disable("b")
    assert [sel.state(i, now=T + 3) for i in "ab"] == [State.BLOCKED, State.DISABLED]
    assert [type(sel.state(i, now=T + 3)) for i in "ab"] == [State, State]
    assert [row["cause"] for row in sel.snapshot(now=T + 3)] == [None, None]
    assert sel.outlook(now=T + 3) == (None, "out")


def test_a_health_table_names_everything_with_members(impl):
    table = impl.HealthTable(2, cooldown=1, failure_threshold=2, failure_rate=0)
    assert table.report_error(0, now=T) is None
    assert table.report_error(0, now=T) is Transition.OPENED
    assert table.report_rate_limited(1, retry_after=3, now=T) is Transition.COOLED
    assert [table.state(i, now=T) for i in range(2)] == [State.COOLDOWN] * 2
    assert [row["cause"] for row in table.snapshot(now=T)] == [Cause.FAILING, Cause.RATE_LIMITED]
    assert table.outlook(now=T)[1] is Cause.FAILING
    assert table.outlook(now=T + 1) == (0.0, "available")


def _check_row(row, hints):
    for field, value in row.items():
        if typing.get_origin(hints[field]) is dict:  # limits: dict[str, LimitView]
            assert type(value) is dict, (field, value)
            for name, view in value.items():
                assert type(name) is str
                assert view.keys() == LimitView.__required_keys__
                _check_row(view, typing.get_type_hints(LimitView))
            continue
        allowed = typing.get_args(hints[field]) or (hints[field],)
        assert type(value) in allowed, (field, value, hints[field])


@pytest.mark.parametrize("setup", ["fresh", "cooling", "half_open", "out"])
def test_snapshot_rows_are_exactly_the_typed_dicts(impl, setup):
    sel = impl.Selector(
        ["a", "b"], max_inflight={"b": 2}, cooldown=1, failure_threshold=1, rpm={"a": 10}
    )
    table = impl.HealthTable(2, max_inflight=[0, 2], cooldown=1, failure_threshold=1)
    table.report_headroom(0, requests_remaining=3, requests_limit=5, tokens_remaining=7, now=T)
    for target, member in ((sel, "a"), (table, 0)):
        target.report_success(member, latency=0.25, now=T - 5)
        if setup in ("cooling", "half_open"):
            target.report_error(member, now=T - (1 if setup == "half_open" else 0))
        elif setup == "out":
            target.block(member)
    assert KeyView.__optional_keys__ == MemberView.__optional_keys__ == frozenset()
    assert KeyView.__required_keys__ == MemberView.__required_keys__ | {"id", "weight"}
    key_hints = typing.get_type_hints(KeyView)
    member_hints = typing.get_type_hints(MemberView)
    for row in sel.snapshot(now=T):
        assert row.keys() == KeyView.__required_keys__
        _check_row(row, key_hints)
    for row in table.snapshot(now=T):
        assert row.keys() == MemberView.__required_keys__
        _check_row(row, member_hints)


@pytest.mark.parametrize("seed", range(3))
def test_twins_return_the_same_members(seed):
    """Not only equal (a str equals a member): the same objects, in both."""
    rng = random.Random(seed)
    program = random_program(rng, 600)
    traces = []
    for impl in BOTH:
        sel = impl.Selector(IDS, seed=seed, failure_threshold=3, failure_rate_window=6.0)
        now, trace = 100.0, []
        for op, *args in program:
            if op == "wait":
                now += args[0]
            elif op == "pick":
                sel.pick(now=now)
            elif op == "report_error":
                trace.append(sel.report_error(args[0], now=now))
            elif op in ("report_success", "report_rate_limited"):
                trace.append(getattr(sel, op)(args[0], args[1], now=now))
            else:
                getattr(sel, op)(args[0])
            trace.append(sel.outlook(now=now)[1])
            trace.extend(sel.state(i, now=now) for i in IDS)
            for row in sel.snapshot(now=now):
                trace.extend((row["state"], row["cause"]))
        traces.append(trace)
    compiled, pure = traces
    assert len(compiled) == len(pure)
    for a, b in zip(compiled, pure):
        assert a is b or (type(a) is str and a == b in ("available", "out")), (a, b)
    kinds = {type(x) for x in compiled}
    assert kinds == {type(None), str, State, Cause, Transition}
    assert {x for x in compiled if type(x) is str} <= {"available", "out"}
