// The console's entry: reads the server-rendered page (labels in the chosen language, the login
// form, the navigation), logs in with a key kept in sessionStorage, and renders one page at a time.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, forgetKey, getJson, keepKey, storedKey } from "./api.js";
import { Engines } from "./engines.jsx";
import { Keys } from "./keys.jsx";
import { setLabels, t } from "./labels.js";
import { Playground } from "./playground.jsx";
import { Usage } from "./usage.jsx";

const PAGES = {
  playground: { view: Playground, admin: false },
  usage: { view: Usage, admin: false },
  keys: { view: Keys, admin: true },
  engines: { view: Engines, admin: true },
};

function currentPage(me) {
  const name = location.hash.replace(/^#\/?/, "") || "playground";
  const page = PAGES[name];
  return page && (!page.admin || me.admin) ? name : "playground";
}

function App({ me }) {
  const [page, setPage] = useState(() => currentPage(me));
  useEffect(() => {
    const onHash = () => {
      const next = currentPage(me);
      setPage(next);
      // Keyboard and screen-reader users land on the page that opened, not at the top of the nav.
      document.getElementById("view")?.focus({ preventScroll: true });
    };
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, [me]);
  useEffect(() => {
    for (const link of document.querySelectorAll("#nav a[data-page]")) {
      link.toggleAttribute("aria-current", link.dataset.page === page);
      if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    }
    document.title = `${t(`nav.${page}`)} · thinkserve`;
  }, [page]);
  const View = PAGES[page].view;
  return <View me={me} key={page} />;
}

function showSignedIn(me) {
  document.body.dataset.state = "in";
  document.body.dataset.role = me.admin ? "admin" : "user";
  const who = document.getElementById("who");
  who.textContent = `${me.name}${me.workspace ? ` · ${me.workspace}` : ""} · ${me.admin ? t("who.admin") : t("who.user")}`;
  for (const link of document.querySelectorAll("#nav a[data-admin]")) link.hidden = !me.admin;
  render(<App me={me} />, document.getElementById("app"));
}

function showLogin(message) {
  document.body.dataset.state = "out";
  render(null, document.getElementById("app"));
  const error = document.getElementById("login-error");
  error.textContent = message ?? "";
  document.getElementById("login-key").focus();
}

async function signIn(key) {
  try {
    const me = await getJson("/admin/v1/me", null, key);
    keepKey(key);
    showSignedIn(me);
  } catch (error) {
    forgetKey();
    showLogin(error instanceof ApiError && error.status === 401 ? t("login.invalid") : error.message);
  }
}

// Alt+1 … Alt+4 open the pages in the order of the navigation.
function shortcuts(event) {
  if (!event.altKey || event.ctrlKey || event.metaKey || document.body.dataset.state !== "in") return;
  const links = [...document.querySelectorAll("#nav a[data-page]")].filter((a) => !a.hidden);
  const index = Number(event.key) - 1;
  if (index >= 0 && index < links.length) {
    event.preventDefault();
    location.hash = links[index].getAttribute("href");
  }
}

function boot() {
  const config = JSON.parse(document.getElementById("console-config").textContent);
  setLabels(config.labels);
  document.getElementById("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("login-key");
    const key = input.value.trim();
    input.value = "";
    if (key) signIn(key);
  });
  document.getElementById("logout").addEventListener("click", () => {
    forgetKey();
    location.hash = "";
    showLogin();
  });
  addEventListener("keydown", shortcuts);
  const key = storedKey();
  if (key) signIn(key);
  else showLogin();
}

boot();
