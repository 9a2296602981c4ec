// Usage: the hourly report of /admin/v1/usage (an admin) or /admin/v1/me/usage (a normal key,
// its own calls), as charts per model, totals, a table and CSV; every number is the server's.
import { useEffect, useMemo, useState } from "preact/hooks";
import { getJson } from "./api.js";
import { HourlyChart, colourOf } from "./chart.jsx";
import { count, csvOf } from "./format.js";
import { t } from "./labels.js";

const SUMS = ["calls", "errors", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens"];
const CHARTS = [
  { id: "calls", value: (r) => r.calls },
  { id: "input_tokens", value: (r) => r.input_tokens },
  { id: "cached_tokens", value: (r) => r.cached_tokens },
  { id: "output_tokens", value: (r) => r.output_tokens },
  { id: "reasoning_tokens", value: (r) => r.reasoning_tokens },
  { id: "cost", value: (r) => Number(r.cost), money: true },
  { id: "latency", percentiles: (r) => r.latency_ms },
  { id: "ttft", percentiles: (r) => r.ttft_ms },
];

// A datetime-local value (read as UTC) for a time; hours only, as the report has.
function hourInput(seconds) {
  return new Date(Math.floor(seconds / 3600) * 3600 * 1000).toISOString().slice(0, 16);
}

function hourOf(row) {
  return Date.parse(row.hour) / 1000;
}

// Sums of decimal strings, exact: nano-units in BigInt.
function addMoney(values) {
  let nano = 0n;
  for (const v of values) {
    const [whole, frac = ""] = v.split(".");
    nano += BigInt(whole) * 1000000000n + BigInt((frac + "000000000").slice(0, 9));
  }
  const frac = (nano % 1000000000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${nano / 1000000000n}${frac ? `.${frac}` : ""}`;
}

// Every hour of the range asked for (when it is not too long to draw), so that counts read 0 where
// there were no calls; else only the hours that had calls.
function hoursOf(rows, range) {
  const had = rows.map(hourOf);
  if (range && (range[1] - range[0]) / 3600 <= 2000) {
    const first = Math.min(range[0], ...had);
    const last = Math.max(range[1], ...had);
    return Array.from({ length: (last - first) / 3600 + 1 }, (_, i) => first + i * 3600);
  }
  return [...new Set(had)].sort((a, b) => a - b);
}

function chartsOf(rows, range) {
  const hours = hoursOf(rows, range);
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const at = new Map(rows.map((r) => [`${hourOf(r)} ${r.model}`, r]));
  const column = (model, pick, empty) =>
    hours.map((h) => {
      const row = at.get(`${h} ${model}`);
      return row ? pick(row) : empty;
    });
  return CHARTS.map((chart) => {
    const series = [];
    models.forEach((model, i) => {
      if (chart.percentiles) {
        for (const p of ["p50", "p95"]) {
          series.push({
            label: `${model} ${p}`,
            colour: colourOf(i),
            dashed: p === "p95",
            gaps: true,
            values: column(model, (r) => chart.percentiles(r)[p], null),
          });
        }
      } else {
        series.push({ label: model, colour: colourOf(i), values: column(model, chart.value, 0) });
      }
    });
    const format = chart.percentiles
      ? (v) => `${+v.toPrecision(3)} ms`
      : chart.money
        ? (v) => String(+v.toPrecision(6))
        : count;
    return { ...chart, hours, series, format };
  });
}

function download(rows, since, until) {
  const blob = new Blob([csvOf(rows)], { type: "text/csv" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `thinkserve-usage-${since.replaceAll(":", "")}-${(until || "now").replaceAll(":", "")}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

export function Usage({ me }) {
  const now = Date.now() / 1000;
  const [since, setSince] = useState(hourInput(now - 23 * 3600));
  const [until, setUntil] = useState("");
  const [model, setModel] = useState("");
  const [key, setKey] = useState("");
  const [workspace, setWorkspace] = useState("");
  const [keys, setKeys] = useState([]);
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  const [asked, setAsked] = useState(0);
  const [range, setRange] = useState(null);

  useEffect(() => {
    if (me.admin) getJson("/admin/v1/keys").then((b) => setKeys(b.data), () => setKeys([]));
  }, [me]);

  useEffect(() => {
    const params = { since, until, model: model.trim() };
    if (me.admin) Object.assign(params, { key, workspace: workspace.trim() });
    setError(null);
    // The charts span the hours asked for, whichever of them had calls.
    const last = until ? Date.parse(`${until}Z`) / 1000 : Date.now() / 1000;
    const span = [Math.floor(Date.parse(`${since}Z`) / 3600000) * 3600, Math.floor(last / 3600) * 3600];
    getJson(me.admin ? "/admin/v1/usage" : "/admin/v1/me/usage", params)
      .then((b) => {
        setRange(span);
        setRows(b.data);
      })
      .catch((e) => setError(e.message));
  }, [asked]);

  const charts = useMemo(() => chartsOf(rows ?? [], range), [rows, range]);
  const totals = useMemo(() => {
    const sums = Object.fromEntries(SUMS.map((k) => [k, (rows ?? []).reduce((s, r) => s + r[k], 0)]));
    return { ...sums, cost: addMoney((rows ?? []).map((r) => r.cost)) };
  }, [rows]);
  const workspaces = [...new Set(keys.map((k) => k.workspace).filter(Boolean))].sort();
  const quick = (hours) => {
    setSince(hourInput(Date.now() / 1000 - (hours - 1) * 3600));
    setUntil("");
    setAsked((n) => n + 1);
  };

  return (
    <section class="usage" aria-labelledby="usage-title">
      <h1 id="usage-title">{me.admin ? t("nav.usage") : t("usage.own")}</h1>
      <form
        class="filters panel"
        aria-label={t("usage.filters")}
        onSubmit={(e) => {
          e.preventDefault();
          setAsked((n) => n + 1);
        }}
      >
        <div class="field">
          <label for="usage-since">{t("usage.since")}</label>
          <input id="usage-since" type="datetime-local" step="3600" value={since} required onInput={(e) => setSince(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="usage-until">{t("usage.until")}</label>
          <input id="usage-until" type="datetime-local" step="3600" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="usage-model">{t("usage.model")}</label>
          <input id="usage-model" value={model} placeholder={t("common.all")} onInput={(e) => setModel(e.currentTarget.value)} />
        </div>
        {me.admin && (
          <div class="field">
            <label for="usage-key">{t("usage.key")}</label>
            <select id="usage-key" value={key} onChange={(e) => setKey(e.currentTarget.value)}>
              <option value="">{t("common.all")}</option>
              {keys.map((k) => (
                <option value={k.id} key={k.id}>
                  {k.name} ({k.prefix}…)
                </option>
              ))}
            </select>
          </div>
        )}
        {me.admin && (
          <div class="field">
            <label for="usage-workspace">{t("usage.workspace")}</label>
            <input
              id="usage-workspace"
              list="usage-workspaces"
              value={workspace}
              placeholder={t("common.all")}
              onInput={(e) => setWorkspace(e.currentTarget.value)}
            />
            <datalist id="usage-workspaces">
              {workspaces.map((w) => (
                <option value={w} key={w} />
              ))}
            </datalist>
          </div>
        )}
        <div class="field buttons">
          <button type="submit" id="usage-apply">{t("usage.apply")}</button>
          <button type="button" class="secondary" onClick={() => quick(24)}>{t("usage.last24h")}</button>
          <button type="button" class="secondary" onClick={() => quick(24 * 7)}>{t("usage.last7d")}</button>
          <button type="button" class="secondary" id="usage-csv" disabled={!rows?.length} onClick={() => download(rows, since, until)}>
            {t("usage.csv")}
          </button>
        </div>
        <p class="note">{t("usage.utc")}</p>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {rows && (
        <>
          <dl class="totals" aria-label={t("usage.totals")}>
            {[...SUMS, "cost"].map((k) => (
              <div class="stat" data-total={k} key={k}>
                <dt>{t(`usage.col.${k}`)}</dt>
                <dd>{k === "cost" ? totals.cost : count(totals[k])}</dd>
              </div>
            ))}
          </dl>
          {rows.length === 0 ? (
            <p class="empty">{t("usage.empty")}</p>
          ) : (
            <div class="charts">
              {charts.map((c) => (
                <HourlyChart
                  key={c.id}
                  id={c.id}
                  title={t(`usage.chart.${c.id}`)}
                  hours={c.hours}
                  series={c.series}
                  format={c.format}
                />
              ))}
            </div>
          )}
          <div class="table-wrap" tabindex="0" role="region" aria-label={t("usage.table")}>
            <table class="data" id="usage-table">
              <caption>{t("usage.table")}</caption>
              <thead>
                <tr>
                  {["hour", "model", "calls", "errors", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens", "cost", "latency_p50", "latency_p95", "ttft_p50", "ttft_p95"].map((c) => (
                    <th scope="col" key={c}>{t(`usage.col.${c}`)}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={`${r.hour} ${r.model}`} data-hour={r.hour} data-model={r.model}>
                    <td>{r.hour.slice(0, 13).replace("T", " ")}:00Z</td>
                    <td>{r.model}</td>
                    <td data-col="calls">{r.calls}</td>
                    <td data-col="errors">{r.errors}</td>
                    <td data-col="input_tokens">{r.input_tokens}</td>
                    <td data-col="cached_tokens">{r.cached_tokens}</td>
                    <td data-col="output_tokens">{r.output_tokens}</td>
                    <td data-col="reasoning_tokens">{r.reasoning_tokens}</td>
                    <td data-col="cost">{r.cost}</td>
                    <td data-col="latency_p50">{r.latency_ms.p50 ?? "–"}</td>
                    <td data-col="latency_p95">{r.latency_ms.p95 ?? "–"}</td>
                    <td data-col="ttft_p50">{r.ttft_ms.p50 ?? "–"}</td>
                    <td data-col="ttft_p95">{r.ttft_ms.p95 ?? "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
