"""A pool of remote engine servers (``kind = "remote"``, ``serve --upstream URL``), one module per job.

- ``engine``: ``RemoteEngine``, the ``engine.protocol.Engine`` over the pool;
- ``sequence``: one generation: completions at upstreams, the budget pause, failover;
- ``pool``: routing (prefix affinity, least outstanding requests by weight) and health checks;
- ``affinity``: the bounded index of which upstream holds which prompt prefix;
- ``upstream``: one server: connection pool, streaming, failures, ejection and return;
- ``probe``: which protocol a server speaks, its context length and model;
- ``wire``, ``vllm_wire``, ``llamacpp_wire``: the token-level protocols (vLLM's completions with
  token-id prompts and ``return_token_ids``; llama.cpp server's ``/completion`` with
  ``return_tokens``);
- ``vocab``: the gateway's copy of the model's tokenizer (GGUF or Hugging Face files);
- ``pieces``: token ids a server sent only the bytes of, recovered from the vocabulary;
- ``stats``: per-upstream counters for the metrics;
- ``settings``: the ``[engines.NAME]`` table of this kind.
"""
