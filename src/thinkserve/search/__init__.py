"""Web search for ``enable_search`` (imports core, thinking).

The pieces, from the bottom up:

- ``provider``: what a search backend is (``SearchProvider``) and what it finds (``Hit``);
- ``documents`` + ``folder_index``: the embedded provider, a SQLite FTS5 (BM25) index over a
  folder of text, Markdown and HTML files, kept current by ``folder_watch``;
- ``searxng``: the self-hosted provider, SearXNG's JSON API;
- ``tool``: ``SearchTool``, the one object that searches (``await tool.search(query, strategy)``)
  plus its function schema (``tool.schema``) and the text a model reads of its results;
- ``context``: where results go in the conversation (a system block) and the citation rule;
- ``citations``: rewrites the answer's citation markers into the asked ``citation_format``;
- ``web_search``: ``WebSearch``, the step the request flow runs before generation.

**The seam for tool calling.** Today the search runs before generation (``WebSearch.before``). A
model that may call the search itself while thinking gets ``SearchTool.schema`` among its tools;
when it emits a call named ``search``, the tool-calling loop runs
``results, text = await tool.call(arguments, options.strategy)`` (the model's JSON text, checked
there), appends ``text`` as the ``tool`` message, emits ``Searched`` with ``results`` (metering
counts one call per event, the dialects write ``search_info`` and ``usage.plugins`` from it) and
resumes.
"""
