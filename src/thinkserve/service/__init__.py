"""The request flow and the generation pipeline under both dialects (imports core, engine, thinking,
catalogue, platform)."""
