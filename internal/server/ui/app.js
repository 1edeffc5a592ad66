// converge's UI: plain ES modules, run as written (no build step). Every
// string from the API goes in as text, never as HTML.

const main = document.getElementById("main");
const ROW = 32; // px, the list's row height (app.css .row)

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function csrf() {
  const m = document.cookie.match(/(?:^|; )converge_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

class HTTPError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  const resp = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (resp.status === 401 && path !== "/api/v1/session") { renderLogin(); throw new HTTPError(401, "log in first"); }
  if (!resp.ok) throw new HTTPError(resp.status, (data && data.error) || resp.statusText);
  return data;
}

function go(path) { history.pushState(null, "", path); route(); }

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link], nav a");
  if (a && a.origin === location.origin && !e.metaKey && !e.ctrlKey) { e.preventDefault(); go(a.pathname + a.search); }
});
window.addEventListener("popstate", route);
document.getElementById("logout").addEventListener("click", async () => {
  await api("DELETE", "/api/v1/session").catch(() => {});
  renderLogin();
});

let stopPage = () => {};

async function route() {
  stopPage();
  stopPage = () => {};
  let me;
  try { me = await api("GET", "/api/v1/session"); } catch { renderLogin(); return; }
  document.getElementById("who").textContent = me.name;
  document.getElementById("logout").hidden = false;
  const m = location.pathname.match(/^\/units\/([^/]+)\/([^/]+)\/([^/]+)$/);
  if (m) renderUnit(...m.slice(1).map(decodeURIComponent));
  else renderList();
}

function renderLogin() {
  stopPage();
  document.getElementById("who").textContent = "";
  document.getElementById("logout").hidden = true;
  const err = h("p", { class: "error", id: "login-error" });
  const form = h("form", { class: "login", id: "login", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("POST", "/api/v1/session", { username: form.username.value, password: form.password.value });
        route();
      } catch (x) { err.textContent = x.message; }
    } },
    h("h1", {}, "Log in to converge"),
    h("input", { name: "username", placeholder: "username", autocomplete: "username", required: true }),
    h("input", { name: "password", type: "password", placeholder: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit" }, "Log in"), err);
  main.replaceChildren(form);
  api("GET", "/api/v1/settings").then((s) => {
    if (s.sso) form.prepend(h("a", { href: "/auth/login", id: "sso", class: "sso" }, "Log in with single sign-on"));
  }).catch(() => {});
}

// The list: every unit of both dialects, read a page at a time, shown
// through a window of rows (smooth at 10,000), kept current by the
// server's event stream.
async function renderList() {
  stopPage();
  stopPage = () => {};
  const params = new URLSearchParams(location.search);
  const filters = ["dialect", "kind", "sync", "health", "namespace", "project", "cluster", "search"];
  const rows = new Map(); // kind/ns/name -> summary
  const key = (u) => `${u.kind}/${u.namespace}/${u.name}`;
  const counts = h("div", { class: "counts", id: "counts" });
  const status = h("span", { class: "muted", id: "list-status" }, "loading…");
  const spacer = h("div", { class: "spacer" });
  const viewport = h("div", { class: "viewport", id: "units" }, spacer);
  const select = (name, values) => h("select", { name, onchange: apply },
    h("option", { value: "" }, `${name}: any`), values.map((v) => h("option", { value: v, selected: params.get(name) === v }, v)));
  const search = h("input", { name: "search", placeholder: "search names", value: params.get("search") || "", oninput: debounce(apply, 300) });
  const exact = (name) => h("input", { name, placeholder: name, size: 12, value: params.get(name) || "", onchange: apply });
  const bar = h("div", { class: "filters" },
    select("dialect", ["argocd", "flux", "converge"]),
    select("kind", ["Application", "ApplicationSet", "Kustomization", "HelmRelease", "GitRepository", "OCIRepository", "HelmRepository", "Pipeline"]),
    select("sync", ["Synced", "OutOfSync", "Unknown"]),
    select("health", ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"]),
    exact("namespace"), exact("project"), exact("cluster"), search, status);
  main.replaceChildren(counts, bar, h("div", { class: "table" },
    h("div", { class: "thead" }, ["Dialect", "Kind", "Name", "Source", "Sync", "Health", "Message"].map((c) => h("span", {}, c))), viewport));

  function apply() {
    const q = new URLSearchParams();
    for (const el of bar.querySelectorAll("select, input")) if (el.value) q.set(el.name, el.value);
    history.replaceState(null, "", "/" + (q.toString() ? "?" + q : ""));
    renderList();
  }

  let sorted = [];
  const draw = () => {
    spacer.style.height = `${sorted.length * ROW}px`;
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 10);
    const last = Math.min(sorted.length, first + Math.ceil(viewport.clientHeight / ROW) + 20);
    const out = [];
    for (let i = first; i < last; i++) {
      const u = sorted[i];
      const r = h("div", { class: "row", "data-unit": key(u) },
        h("span", {}, h("span", { class: `dialect ${u.dialect}` }, u.dialect)),
        h("span", {}, u.kind),
        h("span", {}, h("a", { href: `/units/${encodeURIComponent(u.kind)}/${encodeURIComponent(u.namespace)}/${encodeURIComponent(u.name)}`, "data-link": true }, `${u.namespace}/${u.name}`)),
        h("span", { title: u.source || "" }, u.source || ""),
        h("span", { class: u.sync }, u.sync),
        h("span", { class: u.health }, u.health),
        h("span", { class: "muted", title: u.message || "" }, u.message || ""));
      r.style.top = `${i * ROW}px`;
      out.push(r);
    }
    spacer.replaceChildren(...out);
  };
  const redraw = () => {
    sorted = [...rows.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
    const by = (f) => sorted.reduce((m, u) => (m[u[f]] = (m[u[f]] || 0) + 1, m), {});
    counts.replaceChildren(h("span", { class: "chip" }, `${sorted.length} units`),
      ...Object.entries(by("sync")).map(([k, n]) => h("span", { class: `chip ${k}` }, `sync ${k}: ${n}`)),
      ...Object.entries(by("health")).map(([k, n]) => h("span", { class: `chip ${k}` }, `health ${k}: ${n}`)));
    draw();
  };
  viewport.addEventListener("scroll", () => requestAnimationFrame(draw));

  const q = new URLSearchParams();
  for (const f of filters) if (params.get(f)) q.set(f, params.get(f));
  q.set("limit", "1000");
  let stopped = false;
  const source = new EventSource("/api/v1/stream");
  const later = debounce(redraw, 250);
  const matches = (u) => filters.every((f) => !params.get(f) || (f === "search" ? u.name.toLowerCase().includes(params.get(f).toLowerCase()) : u[f] === params.get(f)));
  source.addEventListener("unit", (e) => {
    const ev = JSON.parse(e.data);
    if (ev.deleted || !matches(ev.unit)) rows.delete(key(ev.unit));
    else rows.set(key(ev.unit), ev.unit);
    later();
  });
  source.addEventListener("resync", () => { if (!stopped) renderList(); });
  stopPage = () => { stopped = true; source.close(); };
  try {
    for (let after = ""; !stopped;) {
      if (after) q.set("after", after);
      const page = await api("GET", "/api/v1/units?" + q);
      for (const u of page.items) rows.set(key(u), u);
      redraw();
      if (!page.next) break;
      after = page.next;
    }
    status.textContent = "";
    main.dataset.ready = "true";
  } catch (x) { status.textContent = x.message; }
}

function badge(text) { return h("span", { class: text || "Unknown" }, text || "Unknown"); }

async function renderUnit(kind, ns, name) {
  stopPage();
  stopPage = () => {};
  const base = `/api/v1/units/${encodeURIComponent(kind)}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  let d;
  try { d = await api("GET", base); } catch (x) { main.replaceChildren(h("p", { class: "error" }, x.message)); return; }
  const u = d.unit;
  const note = h("span", { class: "muted", id: "action-result" });
  const act = async (action, body) => {
    try { await api("POST", `${base}/${action}`, body || {}); note.textContent = `${action}: asked`; setTimeout(() => renderUnit(kind, ns, name), 1500); }
    catch (x) { note.textContent = `${action}: ${x.message}`; }
  };
  const prune = h("input", { type: "checkbox", id: "sync-prune" });
  const dry = h("input", { type: "checkbox", id: "sync-dry-run" });
  const confirmName = h("input", { id: "delete-confirm", placeholder: `type ${u.name} to delete` });
  const can = d.allowed || {};
  const actions = h("div", { class: "actions" },
    can.refresh && h("button", { id: "refresh", onclick: () => act("refresh") }, "Refresh"),
    can.sync && [h("button", { id: "sync", onclick: () => act("sync", { prune: prune.checked, dryRun: dry.checked }) }, "Sync"),
      h("label", {}, prune, " prune"), h("label", {}, dry, " dry run")],
    can.suspend && (d.suspended ? h("button", { id: "resume", onclick: () => act("resume") }, "Resume")
      : h("button", { id: "suspend", onclick: () => act("suspend") }, "Suspend")),
    can.delete && [confirmName, h("button", { id: "delete", onclick: () => act("delete", { confirm: confirmName.value }) }, "Delete")],
    note);

  const tree = (nodes, root) => h("ul", { class: root ? "tree root" : "tree" }, nodes.map((n) =>
    h("li", { class: "node", "data-node": `${n.kind}/${n.name}` },
      h("span", { class: "kind" }, n.kind), `${n.namespace ? n.namespace + "/" : ""}${n.name} `,
      n.sync && badge(n.sync), " ", n.health && badge(n.health), n.message ? h("span", { class: "muted" }, ` ${n.message}`) : null,
      n.children && n.children.length ? tree(n.children, false) : null)));

  const drift = d.drift && d.drift.items && d.drift.items.length ? h("table", { class: "plain", id: "diff" },
    h("tr", {}, ["Object", "Field", "Git", "Live", "Manager", "Category", "Action"].map((c) => h("th", {}, c))),
    d.drift.items.map((i) => h("tr", {}, h("td", {}, i.object), h("td", {}, h("code", {}, i.path || "(object)")),
      h("td", {}, h("code", {}, i.desired || "")), h("td", {}, h("code", {}, i.live || "")), h("td", {}, i.manager || ""),
      h("td", { title: i.evidence || "" }, i.category || ""), h("td", { title: i.rule || "" }, i.action || ""))))
    : h("p", { class: "muted", id: "diff" }, "No drift: the live objects match Git.");

  const events = h("div", { id: "events" }, h("p", { class: "muted" }, "loading…"));
  main.replaceChildren(...[
    h("p", {}, h("a", { href: "/", "data-link": true }, "← all units")),
    h("section", {}, h("h2", { id: "unit-title" }, `${u.kind} ${u.namespace}/${u.name} `, h("span", { class: `dialect ${u.dialect}` }, u.dialect)),
      h("p", {}, "Sync ", badge(u.sync), " · Health ", badge(u.health), u.message ? h("span", { class: "muted" }, ` · ${u.message}`) : null),
      h("p", { class: "muted" }, `${u.source || ""} @ ${u.revision || "?"}${u.cluster ? " → " + u.cluster : ""}`),
      d.operation && h("p", { class: "muted" }, `Last operation: ${d.operation.phase} ${d.operation.message || ""} ${d.operation.by ? "by " + d.operation.by : ""}`),
      actions),
    d.stages && h("section", {}, h("h2", {}, "Stages"), h("table", { class: "plain", id: "stages" },
      h("tr", {}, ["Stage", "Runs", "Revision", "Bake", "Promotion into it", "Gates"].map((c) => h("th", {}, c))),
      d.stages.map((st) => h("tr", { "data-stage": st.name },
        h("td", {}, st.name, st.hold ? h("div", { class: "muted" }, `held: ${st.hold}`) : null),
        h("td", {}, Object.entries(st.digests || {}).map(([a, dg]) => h("div", {}, h("code", {}, `${a}@${dg.slice(0, 19)}`)))),
        h("td", {}, h("code", {}, (st.revision || "").slice(0, 12))),
        h("td", {}, st.rolledBack ? h("span", { class: "Degraded" }, `rolled back in cluster: ${st.rolledBack}`)
          : st.healthy ? h("span", { class: "Healthy" }, `healthy since ${st.healthySince || "?"}`) : h("span", { class: "Progressing" }, st.message || "not healthy")),
        h("td", {}, st.promotion ? [h("div", {}, `${st.promotion.name}: ${st.promotion.phase || ""}`),
          st.promotion.pr ? h("a", { href: st.promotion.pr, rel: "noopener" }, "pull request") : null] : h("span", { class: "muted" }, st.verified ? `verified ${st.verified}` : "")),
        h("td", {}, st.promotion && st.promotion.gates ? st.promotion.gates.map((g) => h("div", { class: g.phase === "Passed" ? "Healthy" : g.phase === "Failed" ? "Degraded" : "Progressing" },
          `${g.name}: ${g.phase}${g.message ? " · " + g.message : ""}`)) : null))))),
    h("section", {}, h("h2", {}, "Resources"), d.tree.length ? tree(d.tree, true) : h("p", { class: "muted" }, d.treeNote || "Nothing applied yet.")),
    h("section", {}, h("h2", {}, "Diff (live against Git)"), drift),
    h("section", {}, h("h2", {}, "History"), d.history.length ? h("table", { class: "plain", id: "history" },
      // Newest first: the first entry is what runs, the others can be rolled back to.
      d.history.map((e, i) => h("tr", {}, h("td", {}, String(e.id)), h("td", {}, h("code", {}, e.revision.slice(0, 40))),
        h("td", {}, e.commit ? [h("div", {}, e.commit.message.split("\n")[0]), h("div", { class: "muted" }, `${e.commit.author} · ${e.commit.when}`)] : null),
        h("td", {}, e.deployedAt || e.status || ""),
        h("td", {}, can.rollback && i > 0 ? h("button", { class: "rollback", onclick: () => act("rollback", { id: e.id }) }, "Roll back") : null)))) : h("p", { class: "muted" }, "No history yet.")),
    h("section", {}, h("h2", {}, "Conditions"), d.conditions.length ? h("table", { class: "plain" },
      d.conditions.map((c) => h("tr", {}, h("td", {}, c.type), h("td", {}, c.status || ""), h("td", {}, c.reason || ""), h("td", {}, c.message || "")))) : h("p", { class: "muted" }, "None.")),
    h("section", {}, h("h2", {}, "Events"), events)].filter(Boolean));
  main.dataset.ready = "true";
  api("GET", `${base}/events`).then((list) => events.replaceChildren(list.length ? h("table", { class: "plain" },
    list.map((e) => h("tr", {}, h("td", {}, e.Type), h("td", {}, e.Reason), h("td", {}, e.Message), h("td", {}, e.Last)))) : h("p", { class: "muted" }, "No events.")))
    .catch((x) => events.replaceChildren(h("p", { class: "error" }, x.message)));
  const timer = setInterval(() => { if (!document.hidden) refreshBadges(); }, 3000);
  stopPage = () => clearInterval(timer);
  async function refreshBadges() {
    try {
      const fresh = await api("GET", base);
      if (JSON.stringify(fresh.drift) !== JSON.stringify(d.drift) || fresh.unit.sync !== u.sync || fresh.unit.health !== u.health ||
          JSON.stringify(fresh.tree) !== JSON.stringify(d.tree)) renderUnit(kind, ns, name);
    } catch { /* the next tick tries again */ }
  }
}

function debounce(f, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
}

route();
