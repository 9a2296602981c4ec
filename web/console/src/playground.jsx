// The playground: pick a served model, see how it thinks (its catalogue card), switch thinking and
// its budget, and stream a conversation: reasoning in its own pane, then the answer, then the
// call's figures.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { getJson, streamChat } from "./api.js";
import { callCost, count, ms } from "./format.js";
import { t } from "./labels.js";
import { makeRenderer } from "./markdown.js";

let renderer = null;
function markdown(text) {
  renderer ??= makeRenderer();
  return renderer(text);
}

function Rules({ card }) {
  const r = card.thinkserve;
  const yes = (b) => (b ? t("common.yes") : t("common.no"));
  return (
    <dl class="rules" aria-label={t("play.rules")}>
      <dt>{t("play.mode")}</dt>
      <dd>{r.mode === "thinking_only" ? t("play.mode.thinking_only") : t("play.mode.hybrid")}</dd>
      <dt>{t("play.default")}</dt>
      <dd>{r.thinking_default ? t("play.on") : t("play.off")}</dd>
      <dt>{t("play.soft_switch")}</dt>
      <dd>{yes(r.soft_switch)}</dd>
      <dt>{t("play.non_stream")}</dt>
      <dd>{yes(r.non_stream)}</dd>
      <dt>{t("play.max_cot")}</dt>
      <dd>{count(r.max_cot)}</dd>
      <dt>{t("play.max_output")}</dt>
      <dd>{count(r.max_output)}</dd>
      <dt>{t("play.served_by")}</dt>
      <dd>
        {r.served_by} ({r.thinking === "prompted" ? t("play.prompted") : t("play.native")})
      </dd>
      <dt>{t("play.price")}</dt>
      <dd>
        {r.price
          ? t("play.price.value", {
              input: r.price.input,
              cached: r.price.cached_input,
              output: r.price.output,
              thinking: r.price.thinking_output,
            })
          : t("play.price.none")}
      </dd>
    </dl>
  );
}

function Stats({ turn }) {
  const u = turn.usage;
  if (!u) return null;
  const reasoning = u.completion_tokens_details?.reasoning_tokens ?? 0;
  const items = [
    ["prompt", count(u.prompt_tokens)],
    ["cached", count(u.prompt_tokens_details?.cached_tokens ?? 0)],
    ["reasoning", count(reasoning)],
    ["answer", count(u.completion_tokens - reasoning)],
    ["ttft", ms(turn.ttft)],
    ["tps", turn.tps == null ? "–" : turn.tps.toFixed(1)],
    ["cost", turn.cost ?? "–"],
  ];
  return (
    <dl class="stats" aria-label={t("play.stats")}>
      {items.map(([name, value]) => (
        <div class="stat" data-stat={name} key={name}>
          <dt>{t(`play.stat.${name}`)}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

function Turn({ turn, index }) {
  const html = useMemo(() => markdown(turn.answer), [turn.answer]);
  const [open, setOpen] = useState(true);
  const streaming = turn.phase === "waiting" || turn.phase === "reasoning" || turn.phase === "answer";
  // The reasoning pane folds itself away once the turn is over; the person may open it again.
  useEffect(() => {
    if (!streaming) setOpen(false);
  }, [streaming]);
  return (
    <li class="turn" data-phase={turn.phase} aria-busy={streaming ? "true" : "false"}>
      <div class="user" aria-label={t("play.you")}>
        <span class="who">{t("play.you")}</span>
        <p>
          {turn.user}
          {turn.directive && <span class="directive"> {turn.directive}</span>}
        </p>
      </div>
      <div class="assistant" aria-label={turn.model}>
        <span class="who">{turn.model}</span>
        {(turn.reasoning || turn.phase === "reasoning") && (
          <details
            class="reasoning"
            open={open}
            onToggle={(e) => setOpen(e.currentTarget.open)}
            id={`reasoning-${index}`}
          >
            <summary>
              {turn.phase === "reasoning" ? t("play.thinking") : t("play.thought")}
              {turn.usage && ` · ${count(turn.usage.completion_tokens_details?.reasoning_tokens ?? 0)}`}
            </summary>
            <div class="reasoning-text">{turn.reasoning}</div>
          </details>
        )}
        <div class="answer markdown" dangerouslySetInnerHTML={{ __html: html }} />
        {turn.phase === "waiting" && <p class="waiting">{t("play.waiting")}</p>}
        {turn.error && (
          <p class="error" role="alert">
            {turn.error}
          </p>
        )}
        <Stats turn={turn} />
      </div>
    </li>
  );
}

function history(turns) {
  const messages = [];
  for (const turn of turns) {
    if (turn.phase !== "done") continue;
    messages.push({ role: "user", content: turn.directive ? `${turn.user} ${turn.directive}` : turn.user });
    // The reasoning goes back as the API takes it; the model's chat template keeps or drops it.
    const reply = { role: "assistant", content: turn.answer };
    if (turn.reasoning) reply.reasoning_content = turn.reasoning;
    messages.push(reply);
  }
  return messages;
}

export function Playground() {
  const [cards, setCards] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [model, setModel] = useState("");
  const [thinking, setThinking] = useState(false);
  const [limit, setLimit] = useState(false);
  const [budget, setBudget] = useState(1024);
  const [directive, setDirective] = useState("");
  const [maxTokens, setMaxTokens] = useState("");
  const [turns, setTurns] = useState([]);
  const [draft, setDraft] = useState("");
  const [busy, setBusy] = useState(false);
  const abort = useRef(null);
  const live = useRef(null);
  const frame = useRef(0);

  useEffect(() => {
    getJson("/compatible-mode/v1/models")
      .then((body) => {
        setCards(body.data);
        const first = body.data.find((c) => c.id === "qwen-plus") ?? body.data[0];
        if (first) choose(first);
      })
      .catch((error) => setLoadError(error.message));
    return () => abort.current?.abort();
  }, []);

  const card = cards?.find((c) => c.id === model);
  const rules = card?.thinkserve;

  function choose(next) {
    const r = next.thinkserve;
    setModel(next.id);
    setThinking(r.thinking_default || r.mode === "thinking_only");
    setBudget((b) => Math.min(b, r.max_cot));
    if (!r.soft_switch) setDirective("");
  }

  // Stream updates arrive per token; the page redraws at most once per frame.
  function update(change) {
    Object.assign(live.current, change);
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      const snapshot = { ...live.current };
      setTurns((all) => [...all.slice(0, -1), snapshot]);
    });
  }

  async function send() {
    const text = draft.trim();
    if (!text || busy || !card) return;
    const thinks = rules.mode === "thinking_only" || thinking;
    const body = {
      model,
      messages: [...history(turns), { role: "user", content: directive ? `${text} ${directive}` : text }],
      stream: true,
      stream_options: { include_usage: true },
    };
    if (rules.mode === "hybrid") body.enable_thinking = thinking;
    if (thinks && limit) body.thinking_budget = budget;
    if (maxTokens) body.max_tokens = Number(maxTokens);
    const turn = { user: text, directive, model, reasoning: "", answer: "", phase: "waiting" };
    live.current = turn;
    setTurns((all) => [...all, { ...turn }]);
    setDraft("");
    setBusy(true);
    const controller = new AbortController();
    abort.current = controller;
    const started = performance.now();
    let first = null;
    try {
      await streamChat(
        body,
        (chunk) => {
          const delta = chunk.choices?.[0]?.delta;
          if (delta?.reasoning_content) {
            first ??= performance.now();
            update({ reasoning: live.current.reasoning + delta.reasoning_content, phase: "reasoning" });
          }
          if (delta?.content) {
            first ??= performance.now();
            update({ answer: live.current.answer + delta.content, phase: "answer" });
          }
          if (chunk.usage) update({ usage: chunk.usage });
        },
        controller.signal,
      );
      const end = performance.now();
      const usage = live.current.usage;
      const decoding = first == null ? 0 : (end - first) / 1000;
      update({
        phase: "done",
        ttft: first == null ? null : first - started,
        tps: usage && decoding > 0 ? usage.completion_tokens / decoding : null,
        cost: callCost(rules.price, usage),
      });
    } catch (error) {
      update({ phase: "error", error: controller.signal.aborted ? t("play.stopped") : error.message });
    } finally {
      setBusy(false);
      abort.current = null;
    }
  }

  if (loadError) return <p class="error" role="alert">{loadError}</p>;
  if (!cards) return <p>{t("common.loading")}</p>;
  return (
    <section class="playground" aria-labelledby="play-title">
      <h1 id="play-title">{t("nav.playground")}</h1>
      <div class="play-grid">
        <form class="settings panel" onSubmit={(e) => e.preventDefault()} aria-label={t("play.settings")}>
          <label for="play-model">{t("play.model")}</label>
          <select id="play-model" value={model} onChange={(e) => choose(cards.find((c) => c.id === e.currentTarget.value))}>
            {cards.map((c) => (
              <option value={c.id} key={c.id}>
                {c.id}
              </option>
            ))}
          </select>
          {card && <Rules card={card} />}
          <label class="switch">
            <input
              type="checkbox"
              id="play-thinking"
              role="switch"
              checked={rules?.mode === "thinking_only" || thinking}
              disabled={rules?.mode === "thinking_only"}
              onChange={(e) => setThinking(e.currentTarget.checked)}
            />
            <span>{t("play.enable_thinking")}</span>
          </label>
          {rules?.mode === "thinking_only" && <p class="note">{t("play.thinking_only_note")}</p>}
          <fieldset disabled={rules?.mode !== "thinking_only" && !thinking}>
            <legend>{t("play.budget")}</legend>
            <label class="switch">
              <input type="checkbox" id="play-limit" checked={limit} onChange={(e) => setLimit(e.currentTarget.checked)} />
              <span>{t("play.limit_budget", { max: count(rules?.max_cot) })}</span>
            </label>
            <div class="budget">
              <input
                type="range"
                id="play-budget-range"
                min="1"
                max={rules?.max_cot ?? 1}
                value={budget}
                disabled={!limit}
                aria-label={t("play.budget")}
                onInput={(e) => setBudget(Number(e.currentTarget.value))}
              />
              <input
                type="number"
                id="play-budget"
                min="1"
                max={rules?.max_cot ?? 1}
                value={budget}
                disabled={!limit}
                aria-label={t("play.budget_tokens")}
                onInput={(e) => {
                  const v = Math.round(Number(e.currentTarget.value));
                  if (v >= 1) setBudget(Math.min(v, rules.max_cot));
                }}
              />
            </div>
          </fieldset>
          {rules?.soft_switch ? (
            <fieldset>
              <legend>{t("play.directive")}</legend>
              {["", "/think", "/no_think"].map((d) => (
                <label class="radio" key={d || "none"}>
                  <input
                    type="radio"
                    name="play-directive"
                    value={d}
                    checked={directive === d}
                    onChange={() => setDirective(d)}
                  />
                  <span>{d || t("play.directive.none")}</span>
                </label>
              ))}
            </fieldset>
          ) : (
            <p class="note">{t("play.no_soft_switch")}</p>
          )}
          <label for="play-max-tokens">{t("play.max_tokens")}</label>
          <input
            type="number"
            id="play-max-tokens"
            min="1"
            max={rules?.max_output}
            placeholder={t("play.max_tokens.default")}
            value={maxTokens}
            onInput={(e) => setMaxTokens(e.currentTarget.value)}
          />
          <button type="button" class="secondary" onClick={() => setTurns([])} disabled={busy || !turns.length}>
            {t("play.clear")}
          </button>
        </form>
        <div class="chat">
          <ol class="turns" aria-live="polite" aria-label={t("play.conversation")}>
            {turns.map((turn, i) => (
              <Turn turn={turn} index={i} key={i} />
            ))}
          </ol>
          <form
            class="composer"
            onSubmit={(e) => {
              e.preventDefault();
              send();
            }}
          >
            <label for="play-input">{t("play.message")}</label>
            <textarea
              id="play-input"
              rows="3"
              value={draft}
              placeholder={t("play.placeholder")}
              onInput={(e) => setDraft(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                  e.preventDefault();
                  send();
                }
                if (e.key === "Escape" && busy) abort.current?.abort();
              }}
            />
            <div class="actions">
              <span class="hint">{t("play.keys_hint")}</span>
              {busy ? (
                <button type="button" class="secondary" onClick={() => abort.current?.abort()}>
                  {t("play.stop")}
                </button>
              ) : null}
              <button type="submit" id="play-send" disabled={busy || !draft.trim()}>
                {t("play.send")}
              </button>
            </div>
          </form>
        </div>
      </div>
    </section>
  );
}
