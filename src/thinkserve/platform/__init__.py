"""Keys, limits, metering and billing around the models.

The seam the rest of the server sees: ``port`` (the ``Gate`` protocol, ``Principal``,
``Admission``, the ``Administration`` capability), ``metering`` (the one ``UsageRecord``, the
``metered`` stream wrapper, the metrics observer), ``settings`` (``PlatformSettings``, built by
``config``) and two gates: ``static_keys.StaticKeys`` and ``stored_keys.StoredKeys``. The stored
gate's parts: ``key_cache``, ``spend``, ``throttle`` (+ ``limits``, ``redis_limiter``),
``usage_writer`` (+ ``journal``), ``administration``, ``report``, ``billing``, and the SQL side
``store``, ``schema``, ``database``, ``migrations/``.
"""
