"""Bytes and connections: byok's HTTP/1.1 server and its pooled upstream
client, both on trio with llhttp.  Nothing here knows about LLMs, keys or
providers; the gateway stands on these."""
