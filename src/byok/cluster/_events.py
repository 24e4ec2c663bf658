"""A key event as replicas exchange it, and how Redis keeps the current ones.

An event names its key by provider, label and fingerprint (never the
secret) and says where it holds: one pool (``scope`` "provider/model", for a
cooldown: rate limits are per model) or every pool of the key (``scope``
"*": blocked, disabled, restored).  Its times are wall-clock epoch seconds,
the only clock that hosts share.

``RECORD`` is the one way an event reaches Redis.  It runs atomically: it
merges the event into the hash of non-ready keys, a field per key holding
its states by scope (so an event costs the same however many keys there
are), by the rules replicas apply (a cooldown never shortens one held, never
covers a blocked or disabled key; a block never covers a disable; an
operator's disable or restore replaces whatever was held), and publishes it
when it changed something, or always for an operator's action and a
re-validation, whose replicas may hold a state that Redis lost.  A replica
that loads the hash and then applies what the channel brings, subscribed
first, misses nothing.
"""

from __future__ import annotations

import msgspec
from coredis.commands.script import Script

# what an event's `why` may say when it brings a key back to ready
ENABLED, RESTORED, REVALIDATED = "enabled", "restored", "revalidated"
RESYNC = "resync"  # a state re-published after Redis was away
EVERY_POOL = "*"


class KeyEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One change of one key's state, decided by one replica."""

    replica: str  # who decided it: its own events come back to it, and are ignored
    provider: str
    label: str
    fingerprint: str
    scope: str  # a pool's name, or EVERY_POOL
    state: str  # cooldown | blocked | disabled | ready
    # a byok_core Transition for a cooldown; blocked, disabled, enabled,
    # restored, revalidated or resync
    why: str
    at: float  # when it was decided, wall-clock epoch seconds
    until: float | None = None  # a cooldown's deadline, wall-clock epoch seconds
    cause: str | None = None  # a cooldown's cause: rate_limited | failing

    @property
    def key_id(self) -> str:
        """The key, as the hash names its field."""
        return msgspec.json.encode([self.provider, self.label, self.fingerprint]).decode()


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(KeyEvent).decode
# a field of the hash: a key's non-ready states, by scope
decode_held = msgspec.json.Decoder(dict[str, KeyEvent]).decode

# KEYS[1]: the hash, field: a key's id -> {scope: the event that put the state there}
# ARGV: key id, scope, state, until ("" if none), why, the event's JSON, now, channel
RECORD = Script(
    script="""
local states, kid, scope, state = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local deadline, why, event, now = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
local held = redis.call("HGET", states, kid)
local own = held and cjson.decode(held) or {}
for where, entry in pairs(own) do
  if entry.state == "cooldown" and entry["until"] <= now then own[where] = nil end
end
local whole = own["*"]
if state == "cooldown" then
  local mine = own[scope]
  if deadline <= now or whole or (mine and mine["until"] >= deadline) then return 0 end
  own[scope] = cjson.decode(event)
elseif state == "blocked" then
  if whole then return 0 end
  own = {["*"] = cjson.decode(event)}
elseif state == "disabled" then
  own = {["*"] = cjson.decode(event)}
elseif why == "restored" then
  own = {}
elseif whole and ((why == "enabled" and whole.state == "disabled")
                  or (why == "revalidated" and whole.state == "blocked")) then
  own["*"] = nil
end
if next(own) == nil then
  redis.call("HDEL", states, kid)
else
  redis.call("HSET", states, kid, cjson.encode(own))
end
redis.call("PUBLISH", ARGV[8], event)
return 1
"""
)
