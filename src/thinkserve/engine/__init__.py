"""Engines: token ids in, token events out (imports core only, and models for default files).

- ``protocol``: the contract every engine meets (``Engine``, ``Sequence``, events, health, stats);
- ``checkpoint``: the pause-at-N-tokens-unless-a-marker mechanism every engine reuses;
- ``queued``: the ``Sequence`` of an engine that decodes elsewhere (a thread, a process) and
  pushes its events to the event loop;
- ``registry``: the table of kinds (``[engines.NAME] kind = ...``), each with its settings type;
- one package per engine: ``llamacpp/`` (embedded llama.cpp), ``fake/`` (scripted, for tests);
- ``supervised/``: any engine in a process of its own, restarted when it dies.

A new engine is a new package here plus one entry in ``registry.KINDS``.
"""
