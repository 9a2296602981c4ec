"""``thinkserve chat``: a terminal client for thinkserve or any Model Studio endpoint.

It speaks either wire format over httpx (``openai_wire``, ``dashscope_wire``), keeps the
conversation (``conversation``), prices each answer (``cost``), renders with rich (``terminal``) and,
with no server to talk to, starts one in this process (``embedded``). ``command`` is the CLI entry.
"""
