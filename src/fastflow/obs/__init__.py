"""Observability and process plumbing shared by every service: metrics, backoff, health, processes."""
