"""The embedded llama.cpp engine, one module per job.

- ``engine``: ``LlamaCppEngine`` and its ``LlamaCppSequence``, the event-loop side;
- ``worker``: the thread that owns llama.cpp (commands in, one decode step at a time, events out);
- ``commands``: the thread-safe way into the worker and its bounded queue count;
- ``scheduler`` and ``slots``: admission, batch planning, preemption and the KV slots with prefix
  reuse, in pure Python (unit-tested without a model file);
- ``sequence``: the worker's state of one sequence and the channel back to its consumer;
- ``native``: loading and freeing the llama.cpp model, context and batch;
- ``cpu`` and ``probe``: which CPU backend llama.cpp loads (AMX kernels only where proven);
- ``sampler``: llama.cpp sampler chains from ``SamplingParams``;
- ``tokenizer``: the model's tokenizer and streaming detokenization;
- ``settings``: the ``[engines.NAME]`` table of this kind and the worker's configuration;
- ``stats``: the counters the worker publishes after every step.
"""
