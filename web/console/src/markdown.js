// Answers as HTML: Markdown (marked), maths as MathML (temml: $…$, \(…\), $$…$$, \[…\]), code
// highlighted (highlight.js, a few common languages), all passed through DOMPurify: the model's
// text is never trusted as HTML.
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import cpp from "highlight.js/lib/languages/cpp";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import { Marked } from "marked";
import temml from "temml";

const LANGUAGES = { bash, cpp, go, java, javascript, json, python, rust, sql, typescript };

function tex(source, displayMode) {
  return temml.renderToString(source, { displayMode, throwOnError: false, annotate: true });
}

function mathExtensions() {
  const block = {
    name: "mathBlock",
    level: "block",
    start: (src) => src.match(/\$\$|\\\[/)?.index,
    tokenizer(src) {
      const m = /^\$\$([\s\S]+?)\$\$(?:\n|$)/.exec(src) ?? /^\\\[([\s\S]+?)\\\](?:\n|$)/.exec(src);
      if (m) return { type: "mathBlock", raw: m[0], text: m[1].trim() };
    },
    renderer: (token) => `<p class="math-block">${tex(token.text, true)}</p>`,
  };
  const inline = {
    name: "mathInline",
    level: "inline",
    start: (src) => src.match(/\$|\\\(/)?.index,
    tokenizer(src) {
      const m = /^\$\$([^$]+?)\$\$/.exec(src) ?? /^\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)/.exec(src) ??
        /^\\\(([\s\S]+?)\\\)/.exec(src);
      if (m) return { type: "mathInline", raw: m[0], text: m[1], display: m[0].startsWith("$$") };
    },
    renderer: (token) => tex(token.text, token.display),
  };
  return [block, inline];
}

export function makeRenderer() {
  for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
  hljs.registerAliases(["sh", "shell", "console"], { languageName: "bash" });
  hljs.registerAliases(["js"], { languageName: "javascript" });
  hljs.registerAliases(["ts"], { languageName: "typescript" });
  hljs.registerAliases(["py"], { languageName: "python" });
  hljs.registerAliases(["c", "c++"], { languageName: "cpp" });
  const marked = new Marked({ gfm: true, breaks: false });
  marked.use({ extensions: mathExtensions() });
  marked.use({
    renderer: {
      code({ text, lang }) {
        const language = (lang ?? "").split(/\s/)[0];
        const known = language && hljs.getLanguage(language);
        const html = known ? hljs.highlight(text, { language }).value : escapeHtml(text);
        const cls = known ? ` class="hljs language-${language}"` : ' class="hljs"';
        return `<pre><code${cls}>${html}</code></pre>`;
      },
    },
  });
  return (markdown) =>
    DOMPurify.sanitize(marked.parse(markdown ?? ""), {
      USE_PROFILES: { html: true, mathMl: true },
      FORBID_TAGS: ["style", "img"],
    });
}

function escapeHtml(text) {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}
