"""Model hubs: pull weights from Hugging Face or ModelScope into the hubs' own caches, list and remove
them, and resolve ``hf://`` / ``modelscope://`` references to cached files (imports core, catalogue)."""
