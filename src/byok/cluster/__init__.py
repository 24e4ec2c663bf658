"""Replicas on many hosts sharing their keys' states through Redis (or Valkey).

    [cluster]
    redis = "env:BYOK_REDIS_URL"     # redis://[user:password@]host[:port][/db], rediss://, unix://
    prefix = "byok"                  # of every Redis key and channel byok uses
    replica = "eu-1"                 # this replica's name; default hostname:pid

Theory of operation
-------------------
Each replica decides about its keys on its own, as a single byok does: the
request path never waits on Redis.  What it decides about a key — cooled
until T and why (a 429, or failures that opened its circuit, or a failed
probe), blocked after a 401/403, disabled, enabled or restored by an
operator, re-validated — the runtime's key listener hands to
``Replica.key_changed``, which puts an event in a bounded queue and returns
(a full queue drops the event and counts it).  A publisher task runs each
event through one Lua script (``_events.RECORD``) that merges it into a
Redis hash of every key that is not ready, ``{prefix}:keys``, and publishes
it on ``{prefix}:events``.  Every other replica applies what it hears
through ``Selector.impose``:

- a cooldown never shortens one in force, and never covers a blocked or
  disabled key;
- a block never covers a disable; a disable, and an operator's restore,
  always win; enable undoes a disable, re-validation a block, and nothing
  else;
- a replica that applies a block asks the key again itself on its own
  schedule (``revalidate_blocked``), so a block outlives the replica that
  saw it;
- a replica ignores its own events as they come back, known by its name
  (hostname:pid unless configured: two hosts must not share one; the
  workers of one host may, as they share one health table).

Keys are named by provider, label and fingerprint, never by secret, and a
cooldown by its pool (rate limits are per model): a label that names another
secret on another replica is another key, and is left alone.  Deadlines
travel as wall-clock epoch times and become the local clock's on arrival:
hosts' clocks must agree (NTP); a skew moves a shared deadline by as much.

A replica that starts subscribes first, then loads the hash, then serves
(``serve_cluster`` returns once that is done, or after SYNC_TIMEOUT, or at
once if Redis refuses the connection: it then serves on its own states and
says so).  When Redis fails or goes silent (a ping every HEARTBEAT seconds,
TIMEOUT for any call), the replica says so once in the log, sets
``byok_cluster_connected`` to 0, serves on, and connects again with a
growing backoff.  Back, it re-syncs before anything else: it publishes what
its queue kept; all its non-ready states as well if events were dropped or
Redis lost its data (a mark, ``{prefix}:epoch``, that a restarted Redis no
longer holds); then it loads the hash, and a block or disable it had learned
from another replica that Redis no longer holds was restored meanwhile:
restored here too.  It says once that it is back.

Limits across replicas (``Replica.limiter``, a ``Limiter``): a GCRA check
in one Lua script, on Redis's clock, atomic whatever replica asks;
``ClusterUnavailable`` at once when Redis is away, for the caller to decide
on local limits.

One Redis server holds a deployment's prefix: Redis Cluster (sharded) and
Sentinel are not supported.  Changing [cluster] takes a restart.
"""

from ._events import KeyEvent
from ._limits import ClusterUnavailable, Limiter
from ._replica import Replica, serve_cluster

__all__ = ["ClusterUnavailable", "KeyEvent", "Limiter", "Replica", "serve_cluster"]
