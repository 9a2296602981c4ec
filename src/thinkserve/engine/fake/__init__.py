"""The scripted engine for API tests and gateway benchmarks (``kind = "fake"``): no model file.

- ``engine``: ``FakeEngine``, its sequences and counters;
- ``tokenizer``: one token per character plus a Qwen3-style chat template;
- ``settings``: the ``[engines.NAME]`` table of this kind.
"""
