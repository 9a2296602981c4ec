"""The admin JSON API (``/admin/v1``) and ``GET /metrics``: routes in ``routes``, bodies in ``bodies``."""
