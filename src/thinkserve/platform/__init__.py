"""Keys, limits, metering and billing around the models (gate.py imports core; the rest builds on it)."""
