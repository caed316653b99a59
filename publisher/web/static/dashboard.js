// The publisher dashboard: a page over the JSON API, polled for live state.
//
// Rules this file keeps:
// - Everything from the server is rendered with textContent or attributes set
//   through the DOM, never as markup: titles and error messages can be hostile.
//   Article HTML is shown only inside sandboxed iframes (no scripts run there).
// - The editor's API token lives in this tab's sessionStorage and is sent only
//   to this origin, as `Authorization: Bearer`.
// - Polling is quick (1 s) while deliveries are moving or just after an action,
//   slow (5 s) when all is quiet, and paused while the tab is hidden.
"use strict";

(() => {
  const TOKEN_KEY = "publisher.api-token";
  const LANGUAGE_KEY = "publisher.language";
  const FAST_MS = 1000;
  const SLOW_MS = 5000;
  const FAST_AFTER_ACTION_MS = 20000;
  const PAGE_SIZE = 20;
  const MOVING = new Set(["pending", "sending", "retrying", "held"]);

  const $ = (id) => document.getElementById(id);

  // -- language ------------------------------------------------------------------
  // The server renders the page in one language (`?lang=`, else Accept-Language)
  // and hands the script its words as a JSON data block: {locale, zone, messages}.

  const I18N = JSON.parse(document.getElementById("i18n").textContent);

  /** `message` in the page's language, its {fields} filled in from `fields`. */
  function t(message, fields) {
    const text = I18N.messages[message] || message;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (fields && name in fields ? String(fields[name]) : whole));
  }

  // Dates in the page's language, in the browser's own variant of it when it has one
  // (an en-GB browser on the English page reads "2 Dec 2026"), in the newsroom's zone.
  const DATE_LOCALE =
    (navigator.languages || []).find((tag) => tag.split("-")[0] === I18N.locale.split("-")[0]) || I18N.locale;
  const DATE_TIME = new Intl.DateTimeFormat(DATE_LOCALE, {
    dateStyle: "medium",
    timeStyle: "medium",
    timeZone: I18N.zone || undefined,
  });
  const TIME = new Intl.DateTimeFormat(DATE_LOCALE, { timeStyle: "medium", timeZone: I18N.zone || undefined });

  const view = {
    config: null,
    columns: [],
    page: null,
    boardKey: "",
    offset: 0,
    filter: "",
    selected: null, // a delivery id
    detailKey: "",
    payloadKey: "",
    fastUntil: 0,
    timer: 0,
    polling: false,
    role: "editor", // the pasted token's: a writer may publish, not act on deliveries
  };

  // -- small DOM helpers -------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** A link only for http(s) URLs; anything else (javascript:, data:) stays text. */
  function link(url, text) {
    if (typeof url === "string" && /^https?:\/\//i.test(url)) {
      return el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, text || url);
    }
    return document.createTextNode(text || url || "");
  }

  function stateBadge(state, tag = "span", props = {}, kind = "publish") {
    const className = `state state-${String(state).replace(/[^a-z]/g, "")} ${props.className || ""}`;
    // A correction or a removal shows what it is: "retract: delivered".
    const text = kind && kind !== "publish" ? t("{kind}: {state}", { kind: t(kind), state: t(state) }) : t(state);
    return el(tag, { ...props, className: className.trim(), text });
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : DATE_TIME.format(date);
  }

  function showMessage(node, text, kind) {
    node.hidden = !text;
    node.textContent = text || "";
    node.className = `message ${kind || ""}`.trim();
  }

  // -- the API -------------------------------------------------------------------

  class Problem extends Error {
    constructor(status, field, problem) {
      super(field ? `${field}: ${problem}` : problem);
      this.status = status;
      this.field = field;
      this.problem = problem;
    }
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  async function api(method, path, { json, text } = {}) {
    const headers = { Accept: "application/json", "Accept-Language": I18N.locale };
    const bearer = token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (text !== undefined) {
      headers["Content-Type"] = "text/plain; charset=utf-8";
      body = text;
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
    } catch (error) {
      throw new Problem(0, null, t("the server did not answer ({reason})", { reason: error.message }));
    }
    const raw = await response.text();
    let data = null;
    try {
      data = raw ? JSON.parse(raw) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new Problem(response.status, error.field || null, error.problem || `HTTP ${response.status}`);
    }
    return data;
  }

  /** Mutations need a token: say so instead of sending a request bound to fail. */
  function needToken(messageNode) {
    if (token()) return false;
    showMessage(messageNode, t("Paste your API token at the top first: changes need it."), "error");
    $("token").focus();
    return true;
  }

  // -- token ---------------------------------------------------------------------

  async function checkToken() {
    const who = $("whoami");
    view.role = "editor"; // until the server says otherwise (it checks every action anyway)
    view.detailKey = "";
    if (!token()) {
      who.textContent = t("not signed in: read only");
      who.className = "whoami";
      return;
    }
    try {
      const me = await api("GET", "/dashboard/api/whoami");
      view.role = me.role; // the detail's buttons follow it
      who.textContent = me.role === "writer" ? t("acting as {name} (writer)", { name: me.name }) : t("acting as {name}", { name: me.name });
      who.className = "whoami ok";
    } catch (error) {
      who.textContent = error.status === 401 ? t("token not accepted") : error.message;
      who.className = "whoami bad";
    }
  }

  function setupToken() {
    $("token-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      $("token").value = "";
      try {
        if (value) sessionStorage.setItem(TOKEN_KEY, value);
      } catch {
        // storage disabled: the token cannot be kept
      }
      await checkToken();
      if (view.config === null) await start();
    });
    $("token-forget").addEventListener("click", () => {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch {
        // nothing kept
      }
      checkToken();
    });
  }

  // -- the board -----------------------------------------------------------------

  function renderHead() {
    const head = $("grid-head");
    head.replaceChildren(el("th", { scope: "col" }, t("Article")));
    for (const column of view.columns) {
      head.append(
        el("th", { scope: "col" }, column.name, column.type ? el("span", { className: "type", text: column.type }) : null),
      );
    }
  }

  function ensureColumns(page) {
    const known = new Set(view.columns.map((c) => c.name));
    let added = false;
    for (const article of page.items) {
      for (const delivery of article.deliveries) {
        if (!known.has(delivery.channel)) {
          known.add(delivery.channel);
          view.columns.push({ name: delivery.channel, type: "" }); // no longer configured
          added = true;
        }
      }
    }
    if (added) renderHead();
  }

  function renderBoard(page) {
    ensureColumns(page);
    const body = $("grid-body");
    const rows = page.items.map((article) => {
      const byChannel = new Map(article.deliveries.map((d) => [d.channel, d]));
      const title = el("div", { className: "title" }, link(article.url, article.title || article.id));
      const meta = el(
        "div",
        { className: "meta" },
        el("code", { text: article.id }),
        ` · v${article.version} · ${when(article.created_at)}`,
        article.retracted_at ? ` · ${t("retracted {time}", { time: when(article.retracted_at) })}` : "",
      );
      const cells = view.columns.map((column) => {
        const delivery = byChannel.get(column.name);
        if (!delivery) return el("td", { className: "none", title: t("not sent to {channel}", { channel: column.name }) }, "—");
        const selected = delivery.id === view.selected ? "selected" : "";
        return el(
          "td",
          { dataset: { channel: column.name } },
          stateBadge(
            delivery.state,
            "button",
            {
              type: "button",
              className: `cell ${selected}`,
              title: t("{channel}: {kind} {state} (delivery {id}); details", {
                channel: column.name,
                kind: t(delivery.kind),
                state: t(delivery.state),
                id: delivery.id,
              }),
              dataset: { delivery: String(delivery.id) },
            },
            delivery.kind,
          ),
        );
      });
      return el("tr", { dataset: { article: article.id } }, el("td", { className: "article" }, title, meta), ...cells);
    });
    body.replaceChildren(...rows);
    $("grid-empty").hidden = page.items.length > 0;
    const first = page.total === 0 ? 0 : page.offset + 1;
    const last = page.offset + page.items.length;
    $("page-info").textContent = t("{first}–{last} of {total}", { first, last, total: page.total });
    $("newer").disabled = page.offset === 0;
    $("older").disabled = last >= page.total;
  }

  async function refreshBoard() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(view.offset) });
    if (view.filter) query.append("state", view.filter);
    const page = await api("GET", `/api/articles?${query}`);
    view.page = page;
    const key = JSON.stringify(page) + `|${view.selected}`;
    if (key !== view.boardKey) {
      view.boardKey = key;
      renderBoard(page);
    }
  }

  function moving() {
    return (view.page?.items || []).some((a) => a.deliveries.some((d) => MOVING.has(d.state)));
  }

  async function poll() {
    if (view.polling) return;
    view.polling = true;
    const live = $("live");
    try {
      if (!document.hidden) {
        await refreshBoard();
        await refreshDetail();
        live.textContent = t("live · {time}", { time: TIME.format(new Date()) });
        live.className = "live";
      }
    } catch (error) {
      live.textContent = t("not updating: {reason}", { reason: error.message });
      live.className = "live down";
    } finally {
      view.polling = false;
      clearTimeout(view.timer);
      const fast = moving() || Date.now() < view.fastUntil;
      view.timer = setTimeout(poll, fast ? FAST_MS : SLOW_MS);
    }
  }

  /** Something changed: look now, and keep looking quickly for a while. */
  function poke() {
    view.fastUntil = Date.now() + FAST_AFTER_ACTION_MS;
    clearTimeout(view.timer);
    view.timer = setTimeout(poll, 0);
  }

  function setupBoard() {
    $("grid-body").addEventListener("click", (event) => {
      const cell = event.target.closest("button.cell");
      if (!cell) return;
      select(Number(cell.dataset.delivery));
    });
    $("filter").addEventListener("change", () => {
      view.filter = $("filter").value;
      view.offset = 0;
      poke();
    });
    $("newer").addEventListener("click", () => {
      view.offset = Math.max(0, view.offset - PAGE_SIZE);
      poke();
    });
    $("older").addEventListener("click", () => {
      view.offset += PAGE_SIZE;
      poke();
    });
    $("retry-failed").addEventListener("click", async () => {
      const message = $("board-message");
      if (needToken(message)) return;
      try {
        const result = await api("POST", "/api/deliveries/retry?state=failed");
        const n = result.retried.length;
        const text = n === 1 ? t("Retrying 1 failed delivery.") : t("Retrying {n} failed deliveries.", { n });
        showMessage(message, n ? text : t("Nothing has failed."), "ok");
      } catch (error) {
        showMessage(message, error.message, "error");
      }
      poke();
    });
    const legend = $("legend");
    for (const state of view.config.states) legend.append(stateBadge(state));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) poke();
    });
  }

  // -- the detail view -------------------------------------------------------------

  function select(deliveryId) {
    view.selected = deliveryId;
    view.detailKey = "";
    view.payloadKey = "";
    showMessage($("detail-message"), "");
    view.boardKey = "";
    poke();
  }

  function articleTitle(articleId) {
    const article = (view.page?.items || []).find((a) => a.id === articleId);
    return article ? article.title || article.id : articleId;
  }

  function fact(list, term, ...value) {
    list.append(el("dt", { text: term }), el("dd", {}, ...value));
  }

  function renderDetail(d) {
    $("detail-empty").hidden = true;
    $("detail-body").hidden = false;
    $("detail-heading").textContent = t("Delivery {id} · {channel} · {kind}", { id: d.id, channel: d.channel, kind: t(d.kind) });
    view.selectedArticle = d.article_id;
    $("detail-article").textContent = articleTitle(d.article_id);
    const facts = $("detail-facts");
    facts.replaceChildren();
    fact(facts, t("state"), stateBadge(d.state));
    fact(facts, t("channel"), `${d.channel} (${d.channel_type})`);
    fact(facts, t("article"), el("code", { text: d.article_id }), " ", t("version {version}", { version: d.article_version }));
    fact(facts, t("attempts"), t("{n} of {max}", { n: d.attempts, max: d.max_attempts }));
    if (d.publish_at) fact(facts, t("scheduled for"), when(d.publish_at));
    if (d.held_until) fact(facts, t("held until"), when(d.held_until), ` (${d.held_reason || ""})`);
    else if (d.next_attempt_at && d.state !== "awaiting_approval") fact(facts, t("next attempt"), when(d.next_attempt_at));
    if (d.last_error) fact(facts, t("last error"), d.last_error, d.last_code ? ` (${t("code {code}", { code: d.last_code })})` : "");
    if (d.delivered_at) fact(facts, t("delivered at"), when(d.delivered_at));
    if (d.remote_url || d.remote_id) fact(facts, t("followers read it at"), link(d.remote_url, d.remote_url || d.remote_id));
    fact(facts, t("last change"), when(d.updated_at));

    const retriable = new Set(view.config.retriable);
    const cancellable = new Set(view.config.cancellable);
    $("detail-retry").disabled = !retriable.has(d.state);
    $("detail-retry").title = retriable.has(d.state)
      ? t("send it again, with fresh attempts")
      : t("cannot retry a delivery that is {state}", { state: t(d.state) });
    $("detail-cancel").disabled = !cancellable.has(d.state);
    $("detail-cancel").title = cancellable.has(d.state)
      ? t("stop it before it is sent")
      : t("cannot cancel a delivery that is {state}", { state: t(d.state) });
    // A writer's article waits for an editor: approve or reject this version of it.
    $("detail-approval").hidden = d.state !== "awaiting_approval";
    view.selectedVersion = d.article_version;
    // Under approval a writer publishes, and an editor does the rest.
    if (view.role === "writer") {
      for (const id of ["detail-retry", "detail-cancel", "detail-retract", "detail-approve", "detail-reject"]) {
        $(id).disabled = true;
        $(id).title = t("only an editor may do this");
      }
    } else {
      $("detail-retract").disabled = false;
      $("detail-approve").disabled = false;
      $("detail-reject").disabled = false;
    }

    const rows = d.log.map((a) =>
      el(
        "tr",
        {},
        el("td", { text: a.number }),
        el("td", { text: when(a.started_at) }),
        el("td", { text: a.actor ? "" : `${a.duration_ms} ms` }),
        el("td", { className: `outcome-${String(a.outcome).replace(/[^a-z]/g, "")}`, text: t(a.outcome) }),
        el("td", { text: a.http_status ?? "" }),
        el("td", { text: a.platform_code ?? "" }),
        el("td", { className: "message-cell", text: a.message ?? "" }),
        el("td", { text: a.actor ?? t("worker") }),
      ),
    );
    $("detail-log").replaceChildren(...rows);
    $("detail-log-empty").hidden = rows.length > 0;
  }

  async function refreshDetail() {
    if (view.selected === null) return;
    const id = view.selected;
    let d;
    try {
      d = await api("GET", `/api/deliveries/${id}`);
    } catch (error) {
      if (error.status === 404) {
        view.selected = null;
        $("detail-body").hidden = true;
        $("detail-empty").hidden = false;
        return;
      }
      throw error;
    }
    if (id !== view.selected) return; // another cell was picked meanwhile
    const key = JSON.stringify(d) + articleTitle(d.article_id);
    if (key !== view.detailKey) {
      view.detailKey = key;
      renderDetail(d);
    }
    // The state is part of the key: a voice episode gets its audio once delivered.
    const payloadKey = `${d.id}@${d.article_version}@${d.state}`;
    if (payloadKey !== view.payloadKey) {
      view.payloadKey = payloadKey;
      const stored = await api("GET", `/dashboard/api/deliveries/${id}/payload`);
      const box = $("detail-payload");
      box.replaceChildren(
        episodePlayer(stored.audio_url),
        stored.payload
          ? channelCard(stored.channel, stored.channel_type, stored.payload, true)
          : el("p", { className: "empty", text: t("No payload stored.") }),
      );
    }
  }

  /** A delivered voice episode, playable here: only our own /media/ paths are used. */
  function episodePlayer(url) {
    if (typeof url !== "string" || !/^\/media\/[A-Za-z0-9._-]+$/.test(url)) return null;
    return el(
      "figure",
      { className: "episode" },
      el("figcaption", { text: t("The episode, as followers hear it") }),
      el("audio", { id: "detail-audio", controls: true, preload: "metadata", src: url }),
    );
  }

  async function act(action) {
    const message = $("detail-message");
    if (view.selected === null || needToken(message)) return;
    try {
      const d = await api("POST", `/api/deliveries/${view.selected}/${action}`);
      showMessage(message, action === "retry" ? t("Retry queued.") : t("Cancelled: {state}.", { state: t(d.state) }), "ok");
    } catch (error) {
      showMessage(message, error.message, "error");
    }
    view.detailKey = "";
    poke();
  }

  function setupDetail() {
    $("detail-retry").addEventListener("click", () => act("retry"));
    $("detail-cancel").addEventListener("click", () => act("cancel"));
    $("detail-retract").addEventListener("click", retract);
    $("detail-approve").addEventListener("click", () => decide("approve"));
    $("detail-reject").addEventListener("click", () => decide("reject"));
  }

  /** Approve or reject the version shown: the server refuses if another is awaiting now. */
  async function decide(action) {
    const message = $("detail-message");
    const id = view.selectedArticle;
    if (!id || needToken(message)) return;
    const body = { version: view.selectedVersion };
    if (action === "reject") {
      body.reason = $("detail-reason").value.trim();
      if (!body.reason) {
        showMessage(message, t("Say why it is rejected first."), "error");
        $("detail-reason").focus();
        return;
      }
    }
    try {
      await api("POST", `/api/articles/${encodeURIComponent(id)}/${action}`, { json: body });
      $("detail-reason").value = "";
      const fields = { id, version: view.selectedVersion };
      showMessage(message, action === "approve" ? t("Approved {id} (version {version}).", fields) : t("Rejected {id} (version {version}).", fields), "ok");
    } catch (error) {
      showMessage(message, error.message, "error");
    }
    view.detailKey = "";
    poke();
  }

  async function retract() {
    const message = $("detail-message");
    const id = view.selectedArticle;
    if (!id || needToken(message)) return;
    if (!window.confirm(t("Withdraw {id} from every channel?", { id }))) return;
    try {
      await api("DELETE", `/api/articles/${encodeURIComponent(id)}`);
      showMessage(message, t("Retracted: removals queued on every channel that has it."), "ok");
    } catch (error) {
      showMessage(message, error.message, "error");
    }
    view.detailKey = "";
    poke();
  }

  // -- previews: how a payload looks on its channel -----------------------------------

  /** Article HTML, inert: a sandboxed frame runs no scripts and reaches nothing of ours. */
  function htmlFrame(html, label) {
    const frame = el("iframe", { sandbox: "", referrerpolicy: "no-referrer", title: label });
    frame.srcdoc =
      "<!doctype html><meta charset=utf-8><style>body{font:15px/1.6 system-ui,sans-serif;" +
      "margin:12px;color:#1d2430}img{max-width:100%;height:auto}</style>" +
      String(html || "");
    return frame;
  }

  function tags(list) {
    if (!Array.isArray(list) || list.length === 0) return null;
    return el("div", { className: "tags" }, ...list.map((t) => el("span", { text: `#${t}` })));
  }

  function channelBody(type, payload) {
    const p = payload || {};
    if (type === "weibo" || type === "mastodon") {
      // No character count here: each platform counts its own way (CJK, URLs),
      // and the formatter has already fitted the status to it.
      const facts = [p.visibility, p.language].filter(Boolean).join(" · ");
      return [el("div", { className: "post", text: String(p.status ?? "") }), facts ? el("div", { className: "count", text: facts }) : null];
    }
    if (type === "wechat" && p.article) {
      const a = p.article;
      return [
        el("div", { className: "post-title", text: a.title }),
        el("div", { className: "post-meta" }, a.author ? `${a.author} · ` : "", a.digest || ""),
        htmlFrame(a.content, t("{title} as an official-account article", { title: a.title })),
        el("div", { className: "post-meta" }, t("read more: "), link(a.content_source_url)),
      ];
    }
    if (type === "rss" || type === "app_feed" || "content_html" in p) {
      const byline = [p.author, p.source, p.published ? when(p.published) : ""].filter(Boolean).join(" · ");
      return [
        el("div", { className: "post-title" }, link(p.url, p.title)),
        el("div", { className: "post-meta", text: byline }),
        el("div", { className: "post-meta", text: p.summary || "" }),
        htmlFrame(p.content_html, t("{title} in the feed", { title: p.title })),
        tags(p.tags),
      ];
    }
    if (type === "voice" && p.episode && Array.isArray(p.episode.script)) {
      // What the engine will read, with its estimated length: the script is the payload.
      const seconds = Math.round(Number(p.estimated_seconds) || 0);
      return [
        el("div", { className: "post-title" }, link(p.url, p.title)),
        el("div", { className: "post-meta", text: t("read aloud in about {seconds} s ({language})", { seconds, language: p.episode.language }) }),
        el("div", { className: "post script", text: p.episode.script.map((piece) => String(piece[0])).join("\n") }),
      ];
    }
    if ("title" in p) {
      return [el("div", { className: "post-title" }, link(p.url, p.title)), el("div", { className: "post-meta", text: p.summary || "" })];
    }
    return [];
  }

  /** A channel's payload as followers would see it, with the exact JSON underneath. */
  function channelCard(name, type, payload, openJson) {
    const rendered = channelBody(type, payload);
    const json = el("pre", { className: "json", text: JSON.stringify(payload, null, 2) });
    return el(
      "article",
      { className: "card", dataset: { channel: name } },
      el("header", {}, el("span", { className: "name", text: name }), el("span", { className: "type", text: type })),
      ...rendered,
      el("details", { open: openJson || rendered.length === 0 }, el("summary", { text: t("payload (JSON)") }), json),
    );
  }

  // -- publishing --------------------------------------------------------------------

  const TEXT_FIELDS = ["id", "url", "title", "summary", "author", "source", "language", "cover_image", "cover_alt"];

  function form() {
    return $("compose-form");
  }

  function sourceTabActive() {
    return $("tab-source").getAttribute("aria-selected") === "true";
  }

  /** `datetime-local` gives local wall time; the API wants an explicit UTC offset. */
  function withOffset(local) {
    if (!local) return undefined;
    const date = new Date(local);
    if (Number.isNaN(date.getTime())) return local; // the API names the field
    const pad = (n) => String(Math.abs(n)).padStart(2, "0");
    const minutes = -date.getTimezoneOffset();
    const sign = minutes >= 0 ? "+" : "-";
    return (
      `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
      `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
      `${sign}${pad(Math.trunc(minutes / 60))}:${pad(minutes % 60)}`
    );
  }

  /** Typed times are the newsroom's wall-clock time when it names a zone, else the browser's. */
  function inputZone() {
    return I18N.zone || Intl.DateTimeFormat().resolvedOptions().timeZone;
  }

  function articleFromFields() {
    const f = form().elements;
    const article = {};
    for (const name of TEXT_FIELDS) {
      const value = f[name].value.trim();
      if (value) article[name] = value;
    }
    const body = f.body.value;
    if (body.trim()) article[f.body_format.value] = body;
    const tagList = f.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tagList.length) article.tags = tagList;
    // Wall-clock times go with the browser's IANA zone: the server refuses a time a
    // daylight-saving change skips or repeats, where `Date` would silently pick one.
    const zone = inputZone();
    for (const name of ["published_at", "publish_at"]) {
      const value = zone ? f[name].value : withOffset(f[name].value);
      if (value) article[name] = value;
    }
    if (zone && (article.published_at || article.publish_at)) article.timezone = zone;
    const boxes = [...$("channel-boxes").querySelectorAll("input[type=checkbox]")];
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    if (chosen.length !== boxes.length) article.channels = chosen;
    const overrides = overridesFromFields();
    if (Object.keys(overrides).length) article.overrides = overrides;
    return article;
  }

  // -- per-channel copy: a field per override, with the platform's own count ------------

  /** `{channel: {key: text}}` from the override fields that hold something. */
  function overridesFromFields() {
    const overrides = {};
    for (const input of $("override-boxes").querySelectorAll("input[data-key], textarea[data-key], select[data-key]")) {
      const value = input.value.trim();
      if (!value) continue;
      (overrides[input.dataset.channel] ??= {})[input.dataset.key] = value;
    }
    return overrides;
  }

  /** The server counts (POST /api/overrides/count), with the very rule the publish check
   * uses: Weibo's 字 and Mastodon's URL-as-23 are not re-implemented here. */
  async function recount(channel) {
    const f = form().elements;
    const mine = overridesFromFields()[channel] || {};
    const counters = $("override-boxes").querySelectorAll(`.counter[data-channel="${CSS.escape(channel)}"]`);
    const body = { overrides: { [channel]: mine } };
    if (f.id.value.trim()) body.id = f.id.value.trim();
    if (/^https?:\/\//.test(f.url.value.trim())) body.url = f.url.value.trim();
    let counts = [];
    if (Object.keys(mine).length) {
      try {
        counts = (await api("POST", "/api/overrides/count", { json: body }))[channel] || [];
      } catch (error) {
        for (const counter of counters) counter.textContent = `not counted: ${error.message}`;
        return;
      }
    }
    for (const counter of counters) {
      const count = counts.find((c) => c.key === counter.dataset.key);
      const input = form().elements[`overrides.${channel}.${counter.dataset.key}`];
      counter.classList.toggle("over", Boolean(count && !count.fits));
      counter.dataset.problem = count && !count.fits ? count.problem || "" : "";
      if (count && !count.fits) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
      if (!count) counter.textContent = `${counter.dataset.limit} ${counter.dataset.unit} at most`;
      else if (count.used === undefined || count.used === null) counter.textContent = count.problem || "";
      else counter.textContent = `${count.used} / ${count.limit} ${count.unit}` + (count.counts ? ` (${count.counts})` : "") + (count.fits ? "" : `: over by ${count.used - count.limit}`);
    }
  }

  function overrideField(column, rule) {
    const name = `overrides.${column.name}.${rule.key}`;
    const data = { channel: column.name, key: rule.key };
    let input;
    if (rule.choices.length) {
      input = el("select", { name, dataset: data }, el("option", { value: "", text: "(channel default)" }), ...rule.choices.map((c) => el("option", { value: c, text: c })));
    } else if (rule.key === "title") {
      input = el("input", { name, dataset: data });
    } else {
      input = el("textarea", { name, rows: 2, dataset: data });
    }
    const parts = [el("span", { text: `${column.name} · ${rule.key}` }), input];
    if (rule.limit !== null && rule.limit !== undefined) {
      parts.push(el("output", { className: "counter", dataset: { ...data, limit: String(rule.limit), unit: rule.unit }, text: `${rule.limit} ${rule.unit} at most` }));
    }
    return el("label", { className: "override" }, ...parts);
  }

  function setupOverrides() {
    const box = $("override-boxes");
    const timers = {};
    for (const column of view.config.channels) {
      for (const rule of column.overrides || []) box.append(overrideField(column, rule));
    }
    box.hidden = !box.querySelector("label.override");
    const later = (channel) => {
      clearTimeout(timers[channel]);
      timers[channel] = setTimeout(() => recount(channel), 150);
    };
    box.addEventListener("input", (event) => {
      const channel = event.target.dataset && event.target.dataset.channel;
      if (channel) later(channel);
    });
    for (const name of ["id", "url"]) {
      form().elements[name].addEventListener("input", () => view.config.channels.forEach((c) => later(c.name)));
    }
  }

  /** The first override a counter shows over its limit, as the server would name it. */
  function overLimit() {
    const counter = $("override-boxes").querySelector(".counter.over");
    if (!counter || sourceTabActive()) return null;
    return new Problem(422, `overrides.${counter.dataset.channel}.${counter.dataset.key}`, counter.dataset.problem);
  }

  async function articleFromSource() {
    const text = $("source-text").value.trim();
    if (!text) throw new Problem(422, "source", t("is empty: paste an article or load a file"));
    if (text.startsWith("{")) {
      try {
        return JSON.parse(text);
      } catch (error) {
        throw new Problem(422, "source", t("is not valid JSON: {reason}", { reason: error.message }));
      }
    }
    return api("POST", "/dashboard/api/source", { json: { text } });
  }

  function currentArticle() {
    return sourceTabActive() ? articleFromSource() : Promise.resolve(articleFromFields());
  }

  function markField(field) {
    for (const node of form().querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    if (!field) return;
    const base = String(field).replace(/\[\d+\]$/, "");
    const name = base === "body_html" || base === "body_markdown" ? "body" : base;
    const input = sourceTabActive() ? $("source-text") : form().elements[name];
    if (input instanceof HTMLElement) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  function failed(error) {
    showMessage($("compose-message"), error.message, "error");
    markField(error.field || null);
  }

  async function preview() {
    showMessage($("compose-message"), "");
    markField(null);
    try {
      const article = await currentArticle();
      const channels = await api("POST", "/api/preview", { json: article });
      const cards = Object.entries(channels).map(([name, c]) => {
        const card = channelCard(name, c.type, c.payload, false);
        const notes = (c.overridden || []).map((key) => el("div", { className: "from-override", text: `${key}: from overrides.${name}.${key}` }));
        const warnings = (c.warnings || []).map((w) => el("div", { className: "warning", text: `warning: ${w}` }));
        card.querySelector("header").after(...notes, ...warnings);
        return card;
      });
      $("preview-cards").replaceChildren(...cards);
      $("preview-empty").hidden = cards.length > 0;
    } catch (error) {
      failed(error);
    }
  }

  async function publish(event) {
    event.preventDefault();
    const message = $("compose-message");
    markField(null);
    if (needToken(message)) return;
    try {
      const refused = overLimit();
      if (refused) throw refused;
      const article = await currentArticle();
      const result = await api("POST", "/api/articles", { json: article });
      const scheduled = result.deliveries.some((d) => d.state === "scheduled");
      let text;
      const fields = { id: result.id, version: result.version };
      const awaiting = result.deliveries.some((d) => d.state === "awaiting_approval");
      if (awaiting && result.changed) text = t("Submitted {id} (version {version}): it waits for an editor's approval.", fields);
      else if (result.rescheduled) text = t("Rescheduled {id} (version {version}).", fields);
      else if (!result.changed) text = t("No change: {id} already has this content (version {version}).", fields);
      else if (scheduled) text = t("Scheduled {id} (version {version}).", fields);
      else if (result.created) text = t("Published {id} (version {version}).", fields);
      else text = t("Updated {id} (version {version}).", fields);
      showMessage(message, text, "ok");
      view.offset = 0;
    } catch (error) {
      failed(error);
    }
    poke();
  }

  function switchTab(source) {
    $("tab-fields").setAttribute("aria-selected", String(!source));
    $("tab-source").setAttribute("aria-selected", String(source));
    $("pane-fields").hidden = source;
    $("pane-source").hidden = !source;
    updatePublishLabel();
  }

  function updatePublishLabel() {
    const scheduling = !sourceTabActive() && Boolean(form().elements.publish_at.value);
    $("publish-button").textContent = scheduling ? t("Schedule") : t("Publish");
  }

  function setupCompose() {
    const boxes = $("channel-boxes");
    for (const column of view.config.channels) {
      boxes.append(
        el("label", {}, el("input", { type: "checkbox", value: column.name, checked: true }), ` ${column.name} `, el("span", { className: "type", text: `(${column.type})` })),
      );
    }
    $("tz").textContent = inputZone() || t("local");
    $("tab-fields").addEventListener("click", () => switchTab(false));
    $("tab-source").addEventListener("click", () => switchTab(true));
    form().elements.publish_at.addEventListener("input", updatePublishLabel);
    form().addEventListener("submit", publish);
    $("preview-button").addEventListener("click", preview);
    setupOverrides();
    $("source-file").addEventListener("change", async () => {
      const file = $("source-file").files[0];
      if (file) $("source-text").value = await file.text();
    });
  }

  // -- start -----------------------------------------------------------------------

  async function start() {
    try {
      view.config = await api("GET", "/dashboard/api/config");
    } catch (error) {
      view.config = null;
      const live = $("live");
      live.className = "live down";
      live.textContent =
        error.status === 401
          ? t("this server needs a token to read: paste yours above")
          : t("not connected: {reason}", { reason: error.message });
      return;
    }
    $("site-title").textContent = view.config.title;
    view.columns = view.config.channels.map((c) => ({ name: c.name, type: c.type }));
    renderHead();
    setupBoard();
    setupDetail();
    setupCompose();
    poke();
  }

  /** The editor's pick of language lives in this tab; the URL's `?lang=` is a pick too. */
  function setupLanguage() {
    const asked = new URLSearchParams(location.search).get("lang");
    let picked = null;
    try {
      if (asked) sessionStorage.setItem(LANGUAGE_KEY, I18N.locale);
      picked = sessionStorage.getItem(LANGUAGE_KEY);
    } catch {
      picked = asked;
    }
    if (!asked && picked && picked !== I18N.locale) {
      location.replace(`?lang=${encodeURIComponent(picked)}`); // the page in the tab's language
      return false;
    }
    const select = $("language");
    select.value = I18N.locale;
    select.addEventListener("change", () => {
      try {
        sessionStorage.setItem(LANGUAGE_KEY, select.value);
      } catch {
        // storage disabled: the URL keeps the pick
      }
      location.search = `?lang=${encodeURIComponent(select.value)}`;
    });
    return true;
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!setupLanguage()) return;
    setupToken();
    checkToken();
    start();
  });
})();
