"""What byok records as it runs: Prometheus metrics, the ledger (each key's
last failure and tokens, recent traffic) and the logs.  Nothing here knows the
gateway; the gateway records into these."""
