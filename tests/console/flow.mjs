// Drives the console in headless Chromium against a live thinkserve; tests/console/test_browser.py
// starts the server (tiny model), runs this, and checks what it writes to $OUT against the CLI.
//
// Env: THINKSERVE_URL, ADMIN_KEY, OUT (a JSON file), SHOTS (a folder for screenshots),
// CHROMIUM (default /usr/bin/chromium). Any failed step throws: the exit status is non-zero.
//
// The browser reaches the server through a pass-through proxy (``pacedProxy``) that can slow
// event streams down, so that a stream of the tiny model, which is over in well under a second,
// can be seen while it runs.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium } from "playwright-core";

let BASE = process.env.THINKSERVE_URL;
const PACE_MS = 150;
const ADMIN_KEY = process.env.ADMIN_KEY;
const SHOTS = process.env.SHOTS;
const BUDGET = 24;
const out = { external: [] };

function watchRequests(context) {
  // The console must work offline: every request goes to this server (data: and blob: are local).
  context.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(BASE + "/") && !url.startsWith("data:") && !url.startsWith("blob:")) {
      out.external.push(url);
    }
  });
  // Anything the page logs as an error is a failure of the console.
  context.on("weberror", (error) => out.pageErrors.push(String(error.error())));
}

// Forwards every request to the server unchanged; while ``pace.slow`` is set, the events of a
// text/event-stream response go on one at a time, PACE_MS apart. Chromium's own network
// throttling cannot do this: it lets bytes through in bursts of about 1.5 kB, and the playground's
// answer once arrived in the same burst as the stream's end, so the page went from reasoning
// straight to done.
async function pacedProxy(target) {
  const upstream = new URL(target);
  const pace = { slow: false };
  const proxy = http.createServer((req, res) => {
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        if (!String(answer.headers["content-type"]).startsWith("text/event-stream")) {
          answer.pipe(res);
          return;
        }
        answer.setEncoding("utf8");
        let pending = "";
        let sent = Promise.resolve();
        answer.on("data", (text) => {
          const events = (pending + text).split("\n\n");
          pending = events.pop();
          for (const event of events) {
            sent = sent.then(async () => {
              if (pace.slow) await sleep(PACE_MS);
              res.write(event + "\n\n");
            });
          }
        });
        answer.on("end", () => {
          sent = sent.then(() => res.end(pending));
        });
      },
    );
    forward.on("error", (error) => res.destroy(error));
    // A page that stops reading (the playground's Stop) closes the server's stream too.
    res.on("close", () => res.writableFinished || forward.destroy());
    req.pipe(forward);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${proxy.address().port}`, pace, close: () => proxy.close() };
}

async function logIn(page, key) {
  await page.goto(`${BASE}/console`);
  const field = page.locator("#login-key");
  await field.focus();
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.waitForSelector("body[data-state='in']");
}

// Records each phase the newest turn goes through, so that the order can be checked afterwards.
const PHASES = `
  window.__phases = [];
  new MutationObserver(() => {
    const turns = document.querySelectorAll(".turn");
    const last = turns[turns.length - 1];
    if (!last) return;
    const key = turns.length + ":" + last.dataset.phase;
    if (window.__phases[window.__phases.length - 1] !== key) window.__phases.push(key);
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-phase"] });
`;

async function stats(turn) {
  const values = {};
  for (const stat of await turn.locator(".stat").all()) {
    values[await stat.getAttribute("data-stat")] = (await stat.locator("dd").textContent()).trim();
  }
  return values;
}

async function playground(page, pace, requests) {
  await page.waitForFunction(() => [...document.querySelectorAll("#play-model option")].some((o) => o.value === "qwen-plus"));
  await page.selectOption("#play-model", "qwen-plus");
  // qwen-plus is hybrid and off by default: switch thinking on and limit its budget.
  assert.equal(await page.isChecked("#play-thinking"), false);
  await page.check("#play-thinking");
  await page.check("#play-limit");
  await page.fill("#play-budget", String(BUDGET));
  assert.equal(await page.inputValue("#play-budget-range"), String(BUDGET));
  assert.equal(await page.getAttribute("#play-budget-range", "max"), "81920");
  // The catalogue's rules of the model are on the page.
  out.rules = (await page.locator(".rules").textContent()).trim();
  // Slow the stream so that it can be seen while it runs (the tiny model is fast).
  pace.slow = true;
  // A question whose answer is a sentence of a few tokens: each comes PACE_MS after the one before.
  await page.fill("#play-input", "Tell me about the moon.");
  await page.keyboard.press("Control+Enter");
  const turn = page.locator(".turn").nth(0);
  await page.waitForSelector(".turn .reasoning-text:not(:empty)");
  // Mid-stream: the reasoning pane is filled and the answer has begun (the network is slow).
  await page.waitForFunction(
    () => document.querySelector(".turn[data-phase='answer'] .answer")?.textContent.trim().length > 0,
    null,
    { timeout: 120_000, polling: "raf" },
  );
  assert.ok((await turn.locator(".reasoning-text").textContent()).length > 0);
  await page.screenshot({ path: join(SHOTS, "console-playground.png") });
  pace.slow = false;
  await page.waitForSelector(".turn[data-phase='done'] .stats", { timeout: 120_000 });
  const first = {
    reasoning: await turn.locator(".reasoning-text").textContent(),
    answer: (await turn.locator(".answer").textContent()).trim(),
    stats: await stats(turn),
    reasoningOpen: await turn.locator("details.reasoning").evaluate((d) => d.open),
  };
  first.phases = await page.evaluate(() => window.__phases);
  out.first = first;
  // A second turn, thinking off: the history goes back with the first turn's reasoning.
  await page.uncheck("#play-thinking");
  await page.fill("#play-input", "And 4 + 4?");
  await page.click("#play-send");
  await page.waitForSelector(".turn:nth-child(2)[data-phase='done'] .stats", { timeout: 120_000 });
  const second = page.locator(".turn").nth(1);
  out.second = {
    answer: (await second.locator(".answer").textContent()).trim(),
    reasoningPanes: await second.locator("details.reasoning").count(),
    stats: await stats(second),
  };
  // A model that honours /think and /no_think: the directive goes at the end of the message.
  await page.click("text=New conversation");
  await page.selectOption("#play-model", "qwen3-8b");
  assert.equal(await page.isChecked("#play-thinking"), true, "qwen3-8b thinks by default");
  await page.check("input[name='play-directive'][value='/no_think']");
  await page.fill("#play-input", "Hello");
  await page.click("#play-send");
  await page.waitForSelector(".turn[data-phase='done'] .stats", { timeout: 120_000 });
  const third = page.locator(".turn").nth(0);
  out.directive = {
    reasoningPanes: await third.locator("details.reasoning").count(),
    stats: await stats(third),
    shown: await third.locator(".directive").textContent(),
  };
  out.requests = requests;
}

// Markdown, code and maths as the playground renders them, from a canned stream (this call never
// reaches the server); the model's text is never trusted as HTML.
const CANNED = [
  { reasoning_content: "Think of $a^2$." },
  { content: "**Pythagoras**: $a^2 + b^2 = c^2$ and\n\n$$\\int_0^1 x\\,dx$$\n\n" },
  { content: "```python\nprint('hi')\n```\n\n<img src=x onerror=alert(1)><script>alert(2)</script>" },
];

async function rendering(browser) {
  const context = await browser.newContext();
  watchRequests(context);
  const page = await context.newPage();
  await page.route("**/compatible-mode/v1/chat/completions", (route) => {
    const frames = CANNED.map((delta) => `data: ${JSON.stringify({ choices: [{ index: 0, delta }] })}\n\n`);
    const usage = { prompt_tokens: 5, completion_tokens: 9, completion_tokens_details: { reasoning_tokens: 3 } };
    frames.push(`data: ${JSON.stringify({ choices: [], usage })}\n\n`, "data: [DONE]\n\n");
    route.fulfill({ status: 200, contentType: "text/event-stream", body: frames.join("") });
  });
  await logIn(page, ADMIN_KEY);
  await page.waitForFunction(() => document.querySelectorAll("#play-model option").length > 0);
  await page.fill("#play-input", "maths?");
  await page.click("#play-send");
  await page.waitForSelector(".turn[data-phase='done']");
  const answer = page.locator(".turn .answer");
  out.rendering = {
    strong: await answer.locator("strong").textContent(),
    inlineMath: await answer.locator("math:not([display='block'])").count(),
    blockMath: await answer.locator("math[display='block']").count(),
    code: await answer.locator("pre code.language-python .hljs-built_in").count(),
    scripts: await answer.locator("script, img").count(),
    reasoning: await page.locator(".turn .reasoning-text").textContent(),
  };
  await context.close();
}

async function keys(page, browser) {
  // Alt+3 opens the third page of the navigation (Keys) from the keyboard.
  await page.locator("#play-input").focus();
  await page.keyboard.press("Alt+3");
  await page.waitForSelector("#key-create");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "view");
  await page.fill("#key-name", "browser-test");
  await page.fill("#key-workspace", "ws-browser");
  await page.fill("#key-rpm", "60");
  await page.fill("#key-tpm", "100000");
  await page.fill("#key-concurrency", "2");
  await page.fill("#key-quota_tokens", "1000");
  await page.fill("#key-spend_limit", "5");
  // What was typed survives the page rendering again (the key list arriving did once wipe the
  // workspace): toggling the list's filter renders the form again.
  await page.click("#keys-show-revoked");
  await page.click("#keys-show-revoked");
  assert.equal(await page.inputValue("#key-workspace"), "ws-browser");
  assert.equal(await page.inputValue("#key-rpm"), "60");
  await page.click("#key-create-submit");
  const secret = await (await page.waitForSelector("#new-key-secret")).inputValue();
  assert.match(secret, /^sk-/);
  const keyId = await page.locator("#new-key-id").textContent();
  const row = page.locator(`#keys-table tr[data-key='${keyId}']`);
  out.key = { id: keyId, cells: await row.locator("td").allTextContents() };
  await page.click("#new-key-done");
  assert.equal(await page.locator("#new-key-secret").count(), 0, "the secret is shown once");
  // The new key works, and logged in, it sees the playground and its own usage only.
  const call = () =>
    fetch(`${BASE}/compatible-mode/v1/chat/completions`, {
      method: "POST",
      headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
      body: JSON.stringify({ model: "qwen-plus", messages: [{ role: "user", content: "hi" }], max_tokens: 8 }),
    });
  out.key.before = (await call()).status;
  const own = await browser.newContext();
  watchRequests(own);
  const ownPage = await own.newPage();
  await logIn(ownPage, secret);
  out.key.navVisible = await ownPage.locator("#nav a[data-page]:visible").allTextContents();
  await ownPage.goto(`${BASE}/console#/usage`);
  await ownPage.waitForSelector("#usage-table tbody tr");
  out.key.ownRows = await ownPage.locator("#usage-table tbody tr").count();
  out.key.ownCalls = await ownPage.locator("#usage-table td[data-col='calls']").allTextContents();
  await own.close();
  await page.screenshot({ path: join(SHOTS, "console-keys.png"), fullPage: true });
  // Revoke it from the list, keyboard-confirmed, and see its calls fail.
  await row.getByRole("button", { name: /browser-test/ }).click();
  await page.waitForFunction(() => document.activeElement?.closest(".confirm") != null);
  await page.keyboard.press("Enter");
  await page.waitForSelector(`#keys-table tr[data-key='${keyId}'][data-revoked='true']`);
  out.key.after = (await call()).status;
}

// Moves the mouse across a chart from its right edge until the legend names `hour`.
async function legendAt(page, metric, hour) {
  const figure = page.locator(`figure[data-metric='${metric}']`);
  const box = await figure.locator(".u-over").boundingBox();
  for (let x = box.x + box.width - 1; x > box.x; x -= 2) {
    await page.mouse.move(x, box.y + box.height / 2);
    const legend = await figure.locator(".u-legend").textContent();
    if (legend.includes(hour)) return legend;
  }
  throw new Error(`no point of ${hour} on the ${metric} chart`);
}

async function usage(page) {
  await page.click("#nav a[data-page='usage']");
  await page.waitForSelector("#usage-table");
  await page.click("#usage-apply");
  await page.waitForSelector("figure[data-metric='calls'] .u-over");
  const rows = [];
  for (const tr of await page.locator("#usage-table tbody tr").all()) {
    const row = { hour: await tr.getAttribute("data-hour"), model: await tr.getAttribute("data-model") };
    for (const td of await tr.locator("td[data-col]").all()) {
      row[await td.getAttribute("data-col")] = (await td.textContent()).trim();
    }
    rows.push(row);
  }
  out.usageRows = rows;
  // The charts: point at the hour of the newest row and read uPlot's legend, which shows the values
  // under the cursor.
  const hour = rows[rows.length - 1].hour.slice(0, 13).replace("T", " ") + ":00";
  out.callsLegend = await legendAt(page, "calls", hour);
  out.outputLegend = await legendAt(page, "output_tokens", hour);
  const download = page.waitForEvent("download");
  await page.click("#usage-csv");
  const file = await (await download).createReadStream();
  const chunks = [];
  for await (const chunk of file) chunks.push(chunk);
  out.csv = Buffer.concat(chunks).toString("utf8");
  await legendAt(page, "calls", hour);
  await page.screenshot({ path: join(SHOTS, "console-usage.png"), fullPage: true });
}

async function engines(page) {
  await page.keyboard.press("Alt+4");
  await page.waitForSelector("#engines-table tr[data-engine='default']");
  // Two readings make a rate: wait for the decode tok/s cell to hold a number.
  await page.waitForFunction(() => /\d/.test(document.querySelector("td[data-col='tps']")?.textContent ?? ""));
  const row = page.locator("#engines-table tr[data-engine='default']");
  out.engine = {
    state: await row.getAttribute("data-state"),
    slots: (await row.locator("td[data-col='slots']").textContent()).trim(),
    queue: (await row.locator("td[data-col='queue']").textContent()).trim(),
    tps: (await row.locator("td[data-col='tps']").textContent()).trim(),
  };
}

async function chinese(browser) {
  const context = await browser.newContext({ locale: "zh-CN" });
  watchRequests(context);
  const page = await context.newPage();
  await logIn(page, ADMIN_KEY);
  await page.goto(`${BASE}/console?lang=zh#/usage`);
  await page.waitForSelector("#usage-table");
  out.chinese = {
    nav: await page.locator("#nav a[data-page]:visible").allTextContents(),
    title: await page.locator("#app h1").first().textContent(),
  };
  await context.close();
}

async function main() {
  out.pageErrors = [];
  const proxy = await pacedProxy(BASE);
  BASE = proxy.url;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--lang=en-US"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: "en-US" });
    // Generous: the test machines are shared and the engine may decode slowly.
    context.setDefaultTimeout(90_000);
    watchRequests(context);
    await context.addInitScript(PHASES);
    const page = await context.newPage();
    const requests = [];
    page.on("request", (r) => {
      if (r.url().endsWith("/chat/completions")) requests.push(JSON.parse(r.postData()));
    });
    // A wrong key is refused at the door, and nothing is kept.
    await page.goto(`${BASE}/console`);
    await page.fill("#login-key", "sk-not-a-key");
    await page.press("#login-key", "Enter");
    await page.waitForFunction(() => document.getElementById("login-error").textContent.length > 0);
    out.wrongKey = {
      error: await page.textContent("#login-error"),
      kept: await page.evaluate(() => sessionStorage.length),
    };
    await logIn(page, ADMIN_KEY);
    out.kept = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: localStorage.length }));
    out.navAdmin = await page.locator("#nav a[data-page]:visible").allTextContents();
    await playground(page, proxy.pace, requests);
    await rendering(browser);
    await keys(page, browser);
    await usage(page);
    await engines(page);
    await chinese(browser);
    await context.close();
  } finally {
    await browser.close();
    proxy.close();
    await writeFile(process.env.OUT, JSON.stringify(out, null, 2));
  }
}

await main();
