"""Web search for ``enable_search`` (imports core, tools).

The pieces, from the bottom up:

- ``provider``: what a search backend is (``SearchProvider``) and what it finds (``Hit``);
- ``documents`` + ``folder_index``: the embedded provider, a SQLite FTS5 (BM25) index over a
  folder of text, Markdown and HTML files, kept current by ``folder_watch``;
- ``searxng``: the self-hosted provider, SearXNG's JSON API;
- ``tool``: ``SearchTool``, the one object that searches (``await tool.search(query, strategy)``)
  plus its function schema (``tool.schema``) and the text a model reads of its results;
- ``context``: where results go in the conversation (a system block) and the citation rule;
- ``citations``: rewrites the answer's citation markers into the asked ``citation_format``;
- ``calls``: ``SearchCalls``, the built-in ``search`` tool of one request (``tools.builtin``):
  the model calls it while it thinks, and its results are numbered across the request's searches;
- ``web_search``: ``WebSearch``, the request flow's search step: the tool for the model to call,
  or the search before generation (``forced_search``, a template without tools), and the rule of
  which.

The model's calls run in ``service.rounds``: each one's ``Searched`` (every result so far) goes
into the stream, metering counts one call per event, and the dialects write ``search_info`` and
``usage.plugins`` from the last one and the count.
"""
