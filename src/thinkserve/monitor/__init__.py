"""Prometheus metrics of the server (imports core; fed by platform metering through an interface)."""
