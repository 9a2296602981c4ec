"""The engine in a supervised process of its own (see supervisor.py)."""
