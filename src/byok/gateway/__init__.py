"""The gateway: the decisions of a request's life and the proxy that carries
them out.

    proxy.py        admits a request and sends the attempts the plan asks for
    planner.py      every decision: which key next, wait, hedge, give up (sans-I/O)
    outcomes.py     what an upstream's answer or failure means for its key
    routing.py      a model's pools of keys: targets, then fallbacks
    relay.py        the client's answer: relayed whole or streamed, or byok's own error
    translation/    OpenAI Chat Completions ⇄ Anthropic Messages, as pure functions
    reporting.py    metrics, ledger and log lines of what happened
    runtime.py      what a loaded config gives; a reload swaps it in one assignment
    headers.py, auth.py, body.py, dialects.py, usage.py, exchange.py: the details
    probe.py, revalidation.py: a key asked with a free request; blocked keys asked again
"""
