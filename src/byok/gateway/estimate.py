"""How many tokens a request will take of a key's limits, before it is sent.

byok takes a request's tokens from the limits it passes (a key's tpm and
daily_tokens, a pool's tpm, the provider's remaining tokens) before it
sends it, so it needs a number before the answer says the real one:

    estimate = ceil(body bytes / 4) + the answer's allowed length

The prompt part is the common rule of thumb of about four bytes of English
per token, over the whole JSON body: it counts the JSON's own syntax and an
image's base64 as text, so it errs high, which is the safe side of a limit.
The answer's part is what the client allows (``max_tokens``,
``max_completion_tokens``, or the responses API's ``max_output_tokens``),
as OpenAI counts a request against its token limit on arrival; without one,
DEFAULT_OUTPUT_TOKENS.  No tokenizer runs: it would cost more than the rest
of the request's handling, and the estimate is corrected once the answer's
usage is known (Plan.used: the limits take or give back the difference).
"""

from __future__ import annotations

from .body import RoutingFields

DEFAULT_OUTPUT_TOKENS = 1024  # a request that does not say how long its answer may be
BYTES_PER_TOKEN = 4
MAX_ESTIMATE = 1 << 40  # byok_core's bound on a cost


def estimate(body: bytes, fields: RoutingFields) -> int:
    """The request's estimated tokens: its prompt and its answer's allowed length."""
    allowed = fields.max_tokens
    if type(allowed) is not int:  # absent (UNSET), null, or not a number
        allowed = fields.max_completion_tokens
        if type(allowed) is not int:
            allowed = fields.max_output_tokens
            if type(allowed) is not int:
                allowed = DEFAULT_OUTPUT_TOKENS
    prompt = -(-len(body) // BYTES_PER_TOKEN)
    return min(prompt + max(allowed, 0), MAX_ESTIMATE)
