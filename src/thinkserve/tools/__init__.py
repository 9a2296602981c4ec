"""Function calling and structured output: tool-call formats, the streaming call parser, the
grammars that force a call or JSON, and the seam for server-side built-in tools."""
