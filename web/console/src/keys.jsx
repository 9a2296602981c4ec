// Keys: create (the secret is shown once), list with what each key spent, revoke. All through
// /admin/v1/keys, within the reach of the admin key that logged in.
import { useEffect, useRef, useState } from "preact/hooks";
import { getJson, sendJson } from "./api.js";
import { count, when } from "./format.js";
import { t } from "./labels.js";

const COUNTS = ["rpm", "tpm", "concurrency", "quota_tokens"];

function NewKey({ created, onDone }) {
  const field = useRef(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => field.current?.select(), []);
  return (
    <div class="new-key panel" role="alertdialog" aria-labelledby="new-key-title" aria-describedby="new-key-note">
      <h2 id="new-key-title">{t("keys.new.title", { name: created.name })}</h2>
      <p id="new-key-note">{t("keys.new.once")}</p>
      <p>
        {t("keys.col.id")} <code id="new-key-id">{created.id}</code>
      </p>
      <input id="new-key-secret" ref={field} readOnly value={created.key} aria-label={t("keys.new.secret")} />
      <div class="actions">
        <button
          type="button"
          onClick={async () => {
            field.current.select();
            try {
              await navigator.clipboard.writeText(created.key);
              setCopied(true);
            } catch {
              setCopied(false);
            }
          }}
        >
          {copied ? t("keys.new.copied") : t("keys.new.copy")}
        </button>
        <button type="button" class="secondary" id="new-key-done" onClick={onDone}>
          {t("keys.new.done")}
        </button>
      </div>
    </div>
  );
}

function CreateForm({ me, onCreated }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const body = { name: data.get("name").trim() };
    const workspace = data.get("workspace").trim();
    if (workspace) body.workspace = workspace;
    for (const name of COUNTS) {
      const value = data.get(name).trim();
      if (value) body[name] = Number(value);
    }
    const spend = data.get("spend_limit").trim();
    if (spend) body.spend_limit = spend;
    if (data.get("admin")) body.admin = true;
    setBusy(true);
    setError(null);
    try {
      const created = await sendJson("POST", "/admin/v1/keys", body);
      form.reset();
      onCreated(created);
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="create panel" id="key-create" onSubmit={submit} aria-labelledby="keys-create-title">
      <h2 id="keys-create-title">{t("keys.create")}</h2>
      <div class="fields">
        <div class="field">
          <label for="key-name">{t("keys.col.name")}</label>
          <input id="key-name" name="name" required maxLength={200} />
        </div>
        <div class="field">
          <label for="key-workspace">{t("keys.col.workspace")}</label>
          {/* defaultValue, not value: a controlled "" would wipe what an admin typed whenever the
              page renders again (the key list arriving, say). A workspace key's own is fixed. */}
          <input id="key-workspace" name="workspace" maxLength={200} defaultValue={me.workspace ?? ""} readOnly={!!me.workspace} />
        </div>
        {COUNTS.map((name) => (
          <div class="field" key={name}>
            <label for={`key-${name}`}>{t(`keys.col.${name}`)}</label>
            <input id={`key-${name}`} name={name} type="number" min="0" step="1" inputMode="numeric" />
          </div>
        ))}
        <div class="field">
          <label for="key-spend_limit">{t("keys.col.spend_limit")}</label>
          <input id="key-spend_limit" name="spend_limit" inputMode="decimal" pattern="\d+(\.\d+)?" />
        </div>
        <label class="switch">
          <input type="checkbox" name="admin" id="key-admin" />
          <span>{t("keys.col.admin")}</span>
        </label>
      </div>
      <p class="note">{t("keys.create.note")}</p>
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" id="key-create-submit" disabled={busy}>
        {t("keys.create.submit")}
      </button>
    </form>
  );
}

function Row({ k, onRevoked }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const yes = useRef(null);
  useEffect(() => {
    if (confirming) yes.current?.focus();
  }, [confirming]);
  async function revoke() {
    try {
      await sendJson("DELETE", `/admin/v1/keys/${encodeURIComponent(k.id)}`);
      onRevoked();
    } catch (e) {
      setError(e.message);
    }
  }
  const limit = (v) => (v == null ? "–" : count(v));
  return (
    <tr data-key={k.id} data-revoked={k.revoked_at ? "true" : "false"}>
      <td>{k.name}</td>
      <td>
        <code>{k.id}</code>
      </td>
      <td>
        <code>{k.prefix}…</code>
      </td>
      <td>{k.workspace ?? "–"}</td>
      <td>{k.admin ? t("common.yes") : t("common.no")}</td>
      <td>{limit(k.rpm)}</td>
      <td>{limit(k.tpm)}</td>
      <td>{limit(k.concurrency)}</td>
      <td>{limit(k.quota_tokens)}</td>
      <td>{k.spend_limit ?? "–"}</td>
      <td data-col="spent">{k.spent ?? "0"}</td>
      <td>{when(k.created_at)}</td>
      <td>
        {k.revoked_at ? (
          <span class="badge off">{t("keys.revoked", { when: when(k.revoked_at) })}</span>
        ) : confirming ? (
          <span class="confirm">
            {t("keys.revoke.confirm")}{" "}
            <button type="button" class="danger" ref={yes} onClick={revoke}>
              {t("keys.revoke.yes")}
            </button>{" "}
            <button type="button" class="secondary" onClick={() => setConfirming(false)}>
              {t("keys.revoke.no")}
            </button>
          </span>
        ) : (
          <button type="button" class="danger" aria-label={t("keys.revoke.label", { name: k.name })} onClick={() => setConfirming(true)}>
            {t("keys.revoke")}
          </button>
        )}
        {error && <span class="error" role="alert">{error}</span>}
      </td>
    </tr>
  );
}

export function Keys({ me }) {
  const [keys, setKeys] = useState(null);
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(null);
  const [showRevoked, setShowRevoked] = useState(true);
  const load = () =>
    getJson("/admin/v1/keys")
      .then((b) => setKeys(b.data))
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);
  const shown = (keys ?? []).filter((k) => showRevoked || !k.revoked_at);
  return (
    <section class="keys" aria-labelledby="keys-title">
      <h1 id="keys-title">{t("nav.keys")}</h1>
      {created ? (
        <NewKey
          created={created}
          onDone={() => {
            setCreated(null);
            document.getElementById("key-name")?.focus();
          }}
        />
      ) : null}
      <CreateForm
        me={me}
        onCreated={(c) => {
          setCreated(c);
          load();
        }}
      />
      {error && <p class="error" role="alert">{error}</p>}
      <label class="switch">
        <input type="checkbox" id="keys-show-revoked" checked={showRevoked} onChange={(e) => setShowRevoked(e.currentTarget.checked)} />
        <span>{t("keys.show_revoked")}</span>
      </label>
      <div class="table-wrap" tabindex="0" role="region" aria-label={t("keys.list")}>
        <table class="data" id="keys-table">
          <caption>{t("keys.list")}</caption>
          <thead>
            <tr>
              {["name", "id", "prefix", "workspace", "admin", "rpm", "tpm", "concurrency", "quota_tokens", "spend_limit", "spent", "created", "status"].map((c) => (
                <th scope="col" key={c}>{t(`keys.col.${c}`)}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((k) => (
              <Row k={k} key={k.id} onRevoked={load} />
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
