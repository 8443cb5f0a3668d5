"""What the client did: the request log, its summaries, and metrics for Prometheus."""
