// Builds the console's assets into src/thinkserve/console/static/ (committed, so that the server
// and its tests need no Node.js): one ES module, one stylesheet, temml's one font, and the licences
// of everything bundled. Run: npm ci && node build.mjs (or `make console-assets`).
// `node build.mjs DIR` builds into DIR instead (the test that the committed build is current).
import { build } from "esbuild";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const out = process.argv[2]
  ? resolve(process.argv[2])
  : fileURLToPath(new URL("../../src/thinkserve/console/static/", import.meta.url));

await build({
  entryPoints: { console: "src/main.jsx", "console-style": "src/console.css" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  loader: { ".woff2": "file" },
  assetNames: "[name]",
  outdir: out,
  legalComments: "external",
  charset: "utf8",
  logLevel: process.argv[2] ? "warning" : "info",
});
