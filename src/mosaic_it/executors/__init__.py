"""Executors that only schedule the one pipeline: local processes, Ray shards."""
