"""Operating a running byok: the admin API (keys, stats, reload, metrics)
and the dashboard's files."""
