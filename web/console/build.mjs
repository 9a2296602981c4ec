// Builds the console's assets into src/thinkserve/console/static/ (committed, so that the server
// and its tests need no Node.js): one ES module, one stylesheet, temml's one font, and
// THIRD-PARTY-LICENSES.txt with the licence of every package bundled.
// Run: npm ci && node build.mjs (or `make console-assets`).
// `node build.mjs DIR` builds into DIR instead (the test that the committed build is current).
import { build } from "esbuild";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const out = process.argv[2]
  ? resolve(process.argv[2])
  : fileURLToPath(new URL("../../src/thinkserve/console/static/", import.meta.url));
rmSync(out, { recursive: true, force: true });

const result = await build({
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
  legalComments: "none",
  charset: "utf8",
  metafile: true,
  logLevel: process.argv[2] ? "warning" : "info",
});

// The packages whose code or files went into the bundle, with their licences.
const packages = new Set();
for (const output of Object.values(result.metafile.outputs)) {
  for (const input of Object.keys(output.inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) packages.add(m[1]);
  }
}
const sections = [...packages].sort().map((name) => {
  const folder = join("node_modules", name);
  const meta = JSON.parse(readFileSync(join(folder, "package.json"), "utf8"));
  const licences = readdirSync(folder)
    .filter((f) => /^LICEN[CS]E/i.test(f))
    .sort()
    .map((f) => readFileSync(join(folder, f), "utf8").trim());
  return `${name} ${meta.version}, licence ${meta.license}\n\n${licences.join("\n\n")}\n`;
});
writeFileSync(
  join(out, "THIRD-PARTY-LICENSES.txt"),
  `The console's assets bundle these packages:\n\n${sections.join("\n" + "-".repeat(72) + "\n\n")}`,
);
