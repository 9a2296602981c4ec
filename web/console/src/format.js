// Numbers as the console shows them, the per-call cost, and CSV.

const integer = new Intl.NumberFormat("en-US");

export function count(n) {
  return n == null ? "–" : integer.format(n);
}

export function ms(n) {
  return n == null ? "–" : `${n < 100 ? n.toFixed(1) : Math.round(n)} ms`;
}

export function when(seconds) {
  return seconds == null ? "–" : new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z";
}

// What one call costs at the model's configured prices (per million tokens), by the billing rules
// of platform/billing.py: cached prompt tokens at the cached price, the rest at the input price,
// and all output (reasoning included) at the thinking price when the call wrote reasoning.
// Prices are decimal strings; the sum is kept in nano-units as integers, as the server keeps it.
export function callCost(price, usage) {
  if (!price || !usage) return null;
  const prompt = usage.prompt_tokens ?? 0;
  const cached = Math.min(usage.prompt_tokens_details?.cached_tokens ?? 0, prompt);
  const output = usage.completion_tokens ?? 0;
  const reasoning = usage.completion_tokens_details?.reasoning_tokens ?? 0;
  const out = reasoning > 0 ? price.thinking_output : price.output;
  const nano = (tokens, perMillion) => BigInt(tokens) * toNanoPerMillion(perMillion);
  // nano-units per million tokens * tokens / 1e6 = nano-units (rounded half up, as Decimal does)
  const total = nano(prompt - cached, price.input) + nano(cached, price.cached_input) + nano(output, out);
  const units = (total + 500000n) / 1000000n;
  return money(units);
}

function toNanoPerMillion(amount) {
  const [whole, frac = ""] = String(amount).split(".");
  return BigInt(whole || "0") * 1000000000n + BigInt((frac + "000000000").slice(0, 9));
}

function money(nano) {
  const whole = nano / 1000000000n;
  const frac = (nano % 1000000000n).toString().padStart(9, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

// Rows of /admin/v1/usage as CSV, one line per row, the same fields in the same units.
export const CSV_COLUMNS = [
  "hour", "model", "key", "workspace", "calls", "errors", "cancelled", "input_tokens", "cached_tokens",
  "output_tokens", "reasoning_tokens", "cost", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms",
];

export function csvOf(rows) {
  const cell = (v) => {
    if (v == null) return "";
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of rows) {
    const flat = {
      ...r,
      latency_p50_ms: r.latency_ms?.p50,
      latency_p95_ms: r.latency_ms?.p95,
      ttft_p50_ms: r.ttft_ms?.p50,
      ttft_p95_ms: r.ttft_ms?.p95,
    };
    lines.push(CSV_COLUMNS.map((c) => cell(flat[c])).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}
