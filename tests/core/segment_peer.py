"""Another process on a shared health segment, driven by a test over pipes.

    python segment_peer.py IMPLEMENTATION SEGMENT_NAME WORKER

It attaches the segment as worker WORKER with the compiled engine or its
pure-Python twin (IMPLEMENTATION: compiled or pure), says {"ready": pid},
then answers one JSON line per command line:

    {"selector": {"ids": [...], "scope": "...", ...options}}  builds the selector
    {"call": "pick", "args": [], "kwargs": {}, "repeat": 1, "at": 12.5}
        calls the selector's method `repeat` times, once time.monotonic()
        has reached `at` (so that many peers race), and answers the result
        (a list of them if repeat is given)
    {"probe_race": {"id": "k", "now": 1000.0, "picks": 1000, "at": ...}}
        picks `picks` times at `now`; each time it wins the half-open probe of
        `id` it takes a one-slot token (max_inflight=1, shared) while it owns
        the probe, then gives both up (report_abandoned): answers [probes
        won, times the token was taken already, i.e. another process owned
        the same probe at once]

with {"ok": result} or {"error": "ExceptionName: message"}.
"""

from __future__ import annotations

import json
import os
import sys
import time


def probe_race(selector, token, id, now, picks):
    won = overlaps = 0
    for _ in range(picks):
        if selector.pick(now=now) == id:
            won += 1
            if token.acquire("token"):
                token.release("token")
            else:
                overlaps += 1
            selector.report_abandoned(id, now=now)
    return [won, overlaps]


def wait_until(at):
    while at is not None and time.monotonic() < at:
        pass  # spin: every peer starts its race at the same moment


def main() -> None:
    implementation, name, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if implementation == "compiled":
        from byok_core._segment import HealthSegment
        from byok_core._selector import Selector
    else:
        from byok_core._segment_py import HealthSegment
        from byok_core._selector_py import Selector
    segment = HealthSegment.attach(name, worker=worker)
    selector = None
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if "selector" in command:
                options = command["selector"]
                selector = Selector(options.pop("ids"), shared=segment, **options)
                result = None
            elif "probe_race" in command:
                options = command["probe_race"]
                token = Selector(["token"], shared=segment, scope="token", max_inflight=1)
                wait_until(options.pop("at"))
                result = probe_race(selector, token, **options)
            else:
                method = getattr(selector, command["call"])
                wait_until(command.get("at"))
                args, kwargs = command.get("args", []), command.get("kwargs", {})
                if "repeat" in command:
                    result = [method(*args, **kwargs) for _ in range(command["repeat"])]
                else:
                    result = method(*args, **kwargs)
            reply = {"ok": result}
        except Exception as error:  # the test asserts on it
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
