"""Keys, limits and metering around the models (imports core)."""
