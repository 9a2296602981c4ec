"""The served model names and how each one thinks (imports core)."""
