"""Prometheus metrics of the server (imports platform.gate)."""
