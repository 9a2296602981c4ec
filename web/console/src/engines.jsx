// Engines: each engine's health, slots busy, queue depth and decode tokens/s, live: the figures
// /metrics serves, read from /admin/v1/engines every 2 s; tokens/s is the rate of sampled tokens
// between two readings.
import { useEffect, useRef, useState } from "preact/hooks";
import { getJson } from "./api.js";
import { count } from "./format.js";
import { t } from "./labels.js";

const EVERY_MS = 2000;

export function Engines() {
  const [engines, setEngines] = useState(null);
  const [rates, setRates] = useState({});
  const [error, setError] = useState(null);
  const last = useRef(null);
  useEffect(() => {
    let stopped = false;
    let timer = 0;
    async function poll() {
      try {
        const body = await getJson("/admin/v1/engines");
        if (stopped) return;
        const before = last.current;
        if (before) {
          const seconds = body.at - before.at;
          const next = {};
          for (const e of body.data) {
            const old = before.data.find((o) => o.name === e.name);
            if (old && seconds > 0 && e.sampled_tokens >= old.sampled_tokens) {
              next[e.name] = (e.sampled_tokens - old.sampled_tokens) / seconds;
            }
          }
          setRates(next);
        }
        last.current = body;
        setEngines(body.data);
        setError(null);
      } catch (e) {
        if (!stopped) setError(e.message);
      }
      if (!stopped) timer = setTimeout(poll, EVERY_MS);
    }
    poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);
  return (
    <section class="engines" aria-labelledby="engines-title">
      <h1 id="engines-title">{t("nav.engines")}</h1>
      <p class="note">{t("engines.note")}</p>
      {error && <p class="error" role="alert">{error}</p>}
      {engines && (
        <div class="table-wrap" tabindex="0" role="region" aria-label={t("nav.engines")}>
          <table class="data" id="engines-table" aria-live="off">
            <thead>
              <tr>
                {["name", "state", "slots", "queue", "tps", "kv", "restarts", "reason"].map((c) => (
                  <th scope="col" key={c}>{t(`engines.col.${c}`)}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {engines.map((e) => (
                <tr key={e.name} data-engine={e.name} data-state={e.state}>
                  <td>{e.name}</td>
                  <td>
                    <span class={`badge ${e.state === "up" ? "on" : "off"}`}>{t(`engines.state.${e.state}`)}</span>
                  </td>
                  <td data-col="slots">
                    {count(e.active_sequences)}
                    {e.slots != null && ` / ${count(e.slots)}`}
                  </td>
                  <td data-col="queue">{count(e.queue_depth)}</td>
                  <td data-col="tps">{rates[e.name] == null ? "–" : rates[e.name].toFixed(1)}</td>
                  <td data-col="kv">{e.kv_size > 0 ? `${((100 * e.kv_cells_used) / e.kv_size).toFixed(1)} %` : "–"}</td>
                  <td>{e.restarts}</td>
                  <td>{e.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
