"""A simulated upstream that speaks the OpenAI and Anthropic APIs over real
HTTP, strictly: a wrong translation must fail here as the real API would
fail it.

The tests and ``byok demo`` run it on loopback.  Each key it accepts has a
behaviour (`Behaviour`) that can be changed while it runs: answer normally,
rate-limit (429 with its delay in any of the headers providers use, or none;
always or every n-th request), refuse (401, 403), fail (500, or Anthropic's
529), answer slowly, hang, trickle, reset the connection before answering,
answer a stream's head and then reset, drop a stream in the middle, or send
a head too large to read.  It records what it saw (`Seen`: key, path, model,
stream, headers, body, and the status it answered) and how many requests
were cancelled by their client, so a test can prove that a disconnect
reached the upstream.

Theory of operation, one module a job:

- `server`: the app.  It serves both dialects, or one
  (``SimulatedUpstream(speaks=("openai",))``): then the routes of the other
  answer 404, as from a server that has no such route (in the shape of the
  dialect it speaks), and are in `seen` with ``status == 404``.
- `validation` (`chat_request`, `messages_request`, `refusals`): the bodies
  of /v1/chat/completions, /v1/messages and /v1/messages/count_tokens are
  decoded into the shapes the real APIs accept (unknown fields refused where
  the API refuses them, its bounds, its roles and blocks, every tool call
  answered by the next turn, thinking's budget under max_tokens) before
  limits and failures, and refused with a 400 in the API's own words
  (OpenAI's ``param`` and ``code``; Anthropic's pydantic locs).  A proxy
  that translates one dialect into the other sends exactly what the real
  API would get, so a mistranslation fails a test instead of passing.
- `limits`: a key's rpm and tpm, token buckets on trio's clock (MockClock
  lets minutes pass in virtual time), told in the provider's headers.
- `replies`: what the answer says, shaped by the request: "Hello from
  <name> word word" for a plain one; tool calls (arguments generated from
  the tools' JSON schemas) when tools are offered and the user spoke last;
  "Result: ..." after tool results; a JSON document of a response_format's
  schema; thinking first; cut at a stop sequence or at max_tokens.
- `answers`: a reply in each endpoint's shape, whole or streamed as the
  SDKs parse it (OpenAI's chunks, n choices and tool-call deltas, in turn
  when the key interleaves them; Anthropic's events with their ping),
  usage with cached tokens when the key has some.
- `errors`: error bodies in each dialect, and the keys' failure modes.
"""

from __future__ import annotations

from .behaviour import Behaviour
from .errors import JSON, SSE
from .limits import DEFAULT_MAX_TOKENS, estimated_tokens
from .server import Seen, SimulatedUpstream

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "JSON",
    "SSE",
    "Behaviour",
    "Seen",
    "SimulatedUpstream",
    "estimated_tokens",
]
