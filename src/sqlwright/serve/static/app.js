// sqlwright web page: vanilla JavaScript over the HTTP API (/api/v1), no build step, nothing fetched from
// elsewhere. Data reaches the page only through textContent and createElement (never innerHTML), so an
// answer holding markup shows as text. Charts are drawn here as SVG from the server's typed chart spec.
"use strict";

(() => {
  const API = "api/v1/";  // relative, so the page also works behind a reverse proxy under a path prefix
  const TOKEN_KEY = "sqlwright.token";
  const PAGE_SIZE = 25;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SERIES_COLORS = 6;

  const state = {
    token: readToken(),
    databases: [],
    db: "",
    conversationId: null,
    turns: [],  // questions of the current conversation, oldest first
    current: null,  // the answer or history entry shown
    askId: null,  // history id of the question shown (what feedback refers to)
    columns: [],
    rows: [],
    truncated: false,
    resultId: null,  // history id of the rows shown (for the CSV download)
    page: 0,
    editedSql: "",
    chart: null,  // the chart spec shown, redrawn when its width changes
    chartWidth: 0,  // the last SQL the person edited and ran for the question shown
    controller: null,  // aborts the question in progress
    tokenPrompt: null,  // the pending token prompt, shared by concurrent 401s
  };

  const $ = (id) => document.getElementById(id);

  // --- small DOM helpers ------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));  // a string becomes a text node
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function show(node, visible) { node.hidden = !visible; }

  function setText(node, text) {
    node.textContent = text === null || text === undefined ? "" : String(text);
    return node;
  }

  function clear(node) { node.replaceChildren(); return node; }

  // --- token ------------------------------------------------------------------------------------
  function readToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; }
  }

  function saveToken(token) {
    state.token = token;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the token lives as long as the page */ }
    show($("forget-token"), Boolean(token));
  }

  // Show the token dialog; resolves when a token is entered, rejects when the dialog is dismissed.
  function promptForToken(message) {
    if (state.tokenPrompt) return state.tokenPrompt;
    const dialog = $("token-dialog");
    const input = $("token-input");
    setText($("token-message"), message);
    input.value = "";
    state.tokenPrompt = new Promise((resolve, reject) => {
      const done = () => {
        $("token-form").removeEventListener("submit", onSubmit);
        dialog.removeEventListener("cancel", onCancel);
        state.tokenPrompt = null;
      };
      const onSubmit = (event) => {
        const token = input.value.trim();
        if (!token) { event.preventDefault(); return; }
        done();
        saveToken(token);
        resolve(token);
      };
      const onCancel = () => {
        done();
        reject(new ApiError(401, "an access token is needed to use this server"));
      };
      $("token-form").addEventListener("submit", onSubmit);
      dialog.addEventListener("cancel", onCancel);
    });
    if (typeof dialog.showModal === "function") dialog.showModal(); else dialog.setAttribute("open", "");
    input.focus();
    return state.tokenPrompt;
  }

  // --- API --------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `the server answered ${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  // fetch under /api/v1 with the bearer token; a 401 asks for a token and tries again.
  async function api(path, options = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const headers = new Headers(options.headers || {});
      if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
      const response = await fetch(API + path, { ...options, headers, credentials: "omit", cache: "no-store" });
      if (response.status !== 401) return response;
      const refused = attempt > 0 || Boolean(state.token);
      if (refused) saveToken("");
      await promptForToken(refused ? "The server refused that token; enter the right one."
        : "This server needs an access token.");
    }
  }

  async function errorOf(response) {
    let detail = "";
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
    } catch (_) {
      detail = response.statusText;
    }
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      detail = `${detail || "the server is busy"}${wait ? ` (try again in ${wait} s)` : ""}`;
    }
    return new ApiError(response.status, detail || `the server answered ${response.status}`);
  }

  async function apiJSON(path, options = {}) {
    const response = await api(path, options);
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  function postJSON(body) {
    return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  }

  // A list inside a response that may be the list itself or an object holding it under one of `keys`.
  function listOf(body, ...keys) {
    if (Array.isArray(body)) return body;
    for (const key of keys) if (body && Array.isArray(body[key])) return body[key];
    return [];
  }

  // --- server-sent events over fetch (EventSource cannot POST) ----------------------------------
  function parseFrame(frame) {
    let kind = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    const text = data.join("\n");
    let parsed;
    try { parsed = JSON.parse(text); } catch (_) { parsed = text; }
    return { kind, data: parsed };
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
        // Normalize line ends, keeping a trailing \r in case its \n arrives in the next chunk.
        const keep = !done && buffer.endsWith("\r") ? "\r" : "";
        buffer = (keep ? buffer.slice(0, -1) : buffer).replace(/\r\n?/g, "\n") + keep;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) onEvent(event.kind, event.data);
        }
        if (done) break;
      }
      const last = parseFrame(buffer.replace(/\r\n?/g, "\n"));
      if (last) onEvent(last.kind, last.data);
    } finally {
      reader.releaseLock();
    }
  }

  // --- formatting -------------------------------------------------------------------------------
  const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });
  const compactFormat = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });

  function percent(value) {
    const number = Number(value);
    return Number.isFinite(number) ? `${Math.round(number * 100)}%` : "–";
  }

  function seconds(value) {
    const number = Number(value);
    if (!Number.isFinite(number)) return "";
    return number < 1 ? `${Math.round(number * 1000)} ms` : `${number.toFixed(number < 10 ? 2 : 1)} s`;
  }

  function cellText(value) {
    if (value === null || value === undefined) return "NULL";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function when(created) {
    const time = Number(created);
    if (!Number.isFinite(time)) return "";
    const date = new Date(time * 1000);
    const today = new Date();
    return date.toDateString() === today.toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
  }

  function plural(count, word) { return `${count} ${word}${count === 1 ? "" : "s"}`; }

  // --- errors -----------------------------------------------------------------------------------
  function showError(error, target = $("error")) {
    const message = error instanceof ApiError ? error.message
      : error && error.message ? error.message : String(error);
    setText(target, message);
    show(target, true);
  }

  function hideError(target = $("error")) { setText(target, ""); show(target, false); }

  // --- databases, info, schema, history ----------------------------------------------------------
  async function loadDatabases() {
    const select = $("db-select");
    const body = await apiJSON("databases");
    const items = listOf(body, "databases", "items");
    state.databases = items.map((item) => (typeof item === "string" ? { name: item } : item))
      .filter((item) => item && item.name);
    clear(select);
    for (const item of state.databases) {
      const description = [item.dialect, item.tables !== undefined ? plural(Number(item.tables), "table") : null]
        .filter(Boolean).join(", ");
      select.append(el("option", { value: item.name }, description ? `${item.name} (${description})` : item.name));
    }
    select.disabled = state.databases.length === 0;
    if (!state.databases.length) {
      select.append(el("option", { value: "" }, "no database"));
      return;
    }
    state.db = state.databases[0].name;
    select.value = state.db;
  }

  async function loadInfo() {
    try {
      const info = await apiJSON("info");
      const parts = [`sqlwright ${info.version || ""}`.trim()];
      if (info.model) parts.push(`model ${typeof info.model === "string" ? info.model : info.model.name || ""}`);
      if (info.read_only !== undefined ? info.read_only : info.readonly) parts.push("read-only");
      setText($("server-info"), parts.join(" · "));
    } catch (_) { /* the footer is an extra */ }
  }

  async function loadSchema() {
    const tree = $("schema-tree");
    clear(tree);
    if (!state.db) return;
    tree.append(el("p", { class: "empty" }, "loading…"));
    let body;
    try {
      body = await apiJSON(`schema?db=${encodeURIComponent(state.db)}`);
    } catch (error) {
      clear(tree).append(el("p", { class: "empty" }, `schema unavailable: ${error.message}`));
      return;
    }
    clear(tree);
    const tables = listOf(body, "tables");
    if (!tables.length) {
      tree.append(el("p", { class: "empty" }, "no tables"));
      return;
    }
    for (const table of tables) tree.append(schemaTable(table));
    filterSchema();
  }

  function schemaTable(table) {
    const name = table.schema ? `${table.schema}.${table.name}` : String(table.name);
    const columns = listOf(table.columns);
    const primary = new Set(listOf(table.primary_key));
    const foreign = new Map();
    for (const key of listOf(table.foreign_keys)) {
      listOf(key.columns).forEach((column, i) => {
        const ref = listOf(key.ref_columns)[i];
        foreign.set(column, `${key.ref_table}${ref ? `.${ref}` : ""}`);
      });
    }
    const list = el("ul", { "aria-label": `columns of ${name}` });
    for (const column of columns) {
      const columnName = typeof column === "string" ? column : String(column.name);
      const keys = [];
      if (column.primary_key || primary.has(columnName)) keys.push("PK");
      if (foreign.has(columnName)) keys.push(`→ ${foreign.get(columnName)}`);
      // spaces between the parts, so that the text reads (and copies, and is spoken) as words
      list.append(el("li", { "data-name": columnName.toLowerCase() },
        el("span", { class: "column-name" }, columnName),
        column.type ? [" ", el("span", { class: "column-type" }, String(column.type))] : null,
        keys.length ? [" ", el("span", { class: "column-key" }, keys.join(" "))] : null,
        column.comment ? [" ", el("span", { class: "column-comment" }, String(column.comment))] : null));
    }
    const rows = table.row_count !== undefined && table.row_count !== null ? ` · ${table.row_count} rows` : "";
    return el("details", { class: "schema-table", "data-name": name.toLowerCase() },
      el("summary", {}, el("span", { class: "table-name" }, name), " ",
        el("span", { class: "column-type" }, `${plural(columns.length, "column")}${rows}`)),
      table.comment ? el("span", { class: "table-comment" }, String(table.comment)) : null,
      list);
  }

  function filterSchema() {
    const needle = $("schema-filter").value.trim().toLowerCase();
    for (const table of $("schema-tree").querySelectorAll("details.schema-table")) {
      const items = table.querySelectorAll("li");
      let anyColumn = false;
      for (const item of items) {
        const match = !needle || item.dataset.name.includes(needle);
        item.hidden = Boolean(needle) && !match && !table.dataset.name.includes(needle);
        anyColumn = anyColumn || (needle && match);
      }
      const visible = !needle || table.dataset.name.includes(needle) || anyColumn;
      table.hidden = !visible;
      if (needle && anyColumn) table.open = true;
    }
  }

  async function loadHistory() {
    const list = $("history-list");
    if (!state.db) { clear(list); return; }
    let entries;
    try {
      entries = listOf(await apiJSON(`history?db=${encodeURIComponent(state.db)}&limit=30`),
        "entries", "history", "items");
    } catch (error) {
      clear(list).append(el("li", { class: "empty" }, `history unavailable: ${error.message}`));
      return;
    }
    clear(list);
    if (!entries.length) {
      list.append(el("li", { class: "empty" }, "no questions yet"));
      return;
    }
    for (const entry of entries) {
      const title = entry.source === "sql" ? (entry.sql || "SQL") : (entry.question || entry.sql || "(empty)");
      const meta = [when(entry.created)];
      if (entry.source === "sql") meta.push("SQL");
      if (entry.abstained) meta.push("abstained");
      else if (Array.isArray(entry.rows) || entry.row_count !== undefined) {
        const count = entry.row_count !== undefined ? entry.row_count : entry.rows.length;
        meta.push(plural(Number(count), "row"));
      }
      const button = el("button", { type: "button", "data-id": entry.id,
        "aria-current": state.current && state.current.id === entry.id ? "true" : null,
        onclick: () => reopen(entry.id) },
      el("span", { class: "history-question" }, title), " ",
      el("span", { class: "history-meta" }, meta.filter(Boolean).join(" · ")));
      list.append(el("li", {}, button));
    }
  }

  async function reopen(id) {
    hideError();
    try {
      const entry = await apiJSON(`history/${encodeURIComponent(id)}`);
      show($("stages"), false);
      renderAnswer(entry);
      state.conversationId = entry.source === "sql" ? null : entry.conversation_id || null;
      state.turns = state.conversationId && entry.question ? [entry.question] : [];
      renderConversation();
      for (const button of $("history-list").querySelectorAll("button[data-id]")) {
        button.setAttribute("aria-current", button.dataset.id === String(id) ? "true" : "false");
      }
      $("answer").scrollIntoView({ block: "nearest" });
    } catch (error) {
      showError(error);
    }
  }

  // --- conversation -----------------------------------------------------------------------------
  function renderConversation() {
    const list = clear($("conversation-turns"));
    for (const question of state.turns) list.append(el("li", {}, question));
    show($("conversation"), Boolean(state.conversationId) && state.turns.length > 0);
  }

  function newConversation() {
    state.conversationId = null;
    state.turns = [];
    renderConversation();
    $("question").focus();
  }

  // --- asking, with live stages ----------------------------------------------------------------
  function stageText(kind, data) {
    const d = data && typeof data === "object" ? data : {};
    switch (kind) {
      case "schema": {
        const shown = Array.isArray(d.tables) ? d.tables.length : Number(d.tables ?? 0);
        const total = Number(d.total_tables ?? shown);
        return [`Read the schema: ${total > shown ? `${shown} of ${total} tables (linked)` : plural(shown, "table")}`
          + (d.tokens !== undefined ? `, ${d.tokens} tokens` : ""), "ok"];
      }
      case "examples": {
        const examples = listOf(d.examples).length;
        const notes = listOf(d.notes).length;
        return [`Stored examples shown to the model: ${examples}; notes: ${notes}`, "ok"];
      }
      case "candidate":
        return d.ok
          ? [`Candidate ${d.origin || ""} ran: ${plural(Number(d.row_count ?? 0), "row")}`
            + (d.seconds !== undefined ? ` in ${seconds(d.seconds)}` : ""), "ok"]
          : [`Candidate ${d.origin || ""} failed: ${d.error || "no SQL"}`, "failed"];
      case "repair":
        return d.ok ? [`Repair ${d.origin || ""} ran`, "ok"]
          : [`Repair ${d.origin || ""} failed: ${d.error || "no SQL"}`, "failed"];
      case "vote": {
        const groups = Array.isArray(d.groups) ? d.groups : [];
        const agree = groups.length && d.voters ? `${groups[0]} of ${d.voters} candidates agree, ` : "";
        return [`Vote: ${agree}confidence ${percent(d.confidence)}`, "ok"];
      }
      case "summary":
        return ["Summary written", "ok"];
      case "answer":
        return d.abstained ? ["Abstained", "failed"] : ["Answered", "ok"];
      case "error":
        return [`Error: ${d.detail || data}`, "failed"];
      case "stopped":
        return ["Stopped: the question was withdrawn and the model told to stop", "failed"];
      default:
        return [kind, ""];
    }
  }

  function addStage(kind, data, started) {
    const list = $("stage-list");
    const pending = list.querySelector(".stage-pending");
    if (pending) pending.remove();
    const [text, status] = stageText(kind, data);
    list.append(el("li", { "data-kind": kind },
      el("span", { class: "stage-time" }, seconds((performance.now() - started) / 1000)),
      el("span", { class: status ? `stage-${status}` : "" }, text)));
  }

  async function ask(question) {
    if (state.controller) return;
    hideError();
    const started = performance.now();
    const list = clear($("stage-list"));
    list.append(el("li", { class: "stage-pending" }, el("span", { class: "stage-time" }, ""),
      el("span", {}, "Asking")));
    show($("stages"), true);
    const body = { question };
    if (state.db) body.db = state.db;
    if (state.conversationId) body.conversation_id = state.conversationId;
    state.controller = new AbortController();
    setBusy(true);
    try {
      const response = await api("ask/stream", { method: "POST", signal: state.controller.signal,
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(body) });
      if (!response.ok) throw await errorOf(response);
      let answer = null;
      let failure = null;
      if ((response.headers.get("Content-Type") || "").includes("application/json")) {
        answer = await response.json();  // a server without streaming: the plain /ask answer
      } else {
        await readEvents(response, (kind, data) => {
          if (kind === "answer") answer = data;
          else if (kind === "error") failure = new ApiError(data && data.status, data && data.detail);
          addStage(kind, data, started);
        });
      }
      if (failure) throw failure;
      if (!answer) throw new Error("the server ended the answer stream without an answer; try again");
      renderAnswer(answer);
      if (answer.conversation_id) {
        if (state.conversationId !== answer.conversation_id) state.turns = [];
        state.conversationId = answer.conversation_id;
        state.turns.push(answer.question || question);
      }
      renderConversation();
      $("question").value = "";
      loadHistory();
    } catch (error) {
      if (error && error.name === "AbortError") addStage("stopped", null, started);
      else showError(error);
      const pending = list.querySelector(".stage-pending");
      if (pending) pending.remove();
    } finally {
      state.controller = null;
      setBusy(false);
    }
  }

  function setBusy(busy) {
    $("ask-button").disabled = busy;
    show($("stop-button"), busy);
    $("question").setAttribute("aria-busy", busy ? "true" : "false");
  }

  // --- the answer -------------------------------------------------------------------------------
  function renderAnswer(answer) {
    state.current = answer;
    const fromSql = answer.source === "sql";
    state.askId = fromSql ? null : answer.id || null;
    state.editedSql = "";
    show($("answer"), true);
    setText($("answer-question"), fromSql ? "SQL you ran" : answer.question || "");

    show($("abstention"), Boolean(answer.abstained));
    setText($("abstention-reason"), answer.abstained ? answer.reason || "no reason given" : "");

    show($("summary"), Boolean(answer.summary));
    setText($("summary"), answer.summary || "");

    setSql(answer.sql);
    closeEditor();
    hideError($("sql-error"));
    show($("sql-status"), false);

    renderFeedback(answer);
    if (answer.abstained || !answer.sql) {
      setResult(null);
    } else {
      setResult({ columns: answer.columns, rows: answer.rows, truncated: answer.truncated, id: answer.id });
    }
    renderChart(answer.abstained ? null : answer.chart);
    renderDetails(answer);
  }

  function setSql(sql) {
    show($("sql-section"), Boolean(sql));
    setText($("sql-code"), sql || "");
    setText($("copy-status"), "");
    const origin = state.current && Array.isArray(state.current.candidates)
      ? state.current.candidates.find((c) => c.sql === sql) : null;
    show($("sql-origin"), Boolean(origin && origin.origin));
    setText($("sql-origin"), origin ? origin.origin : "");
  }

  function renderFeedback(answer) {
    const possible = Boolean(state.askId);
    show($("feedback"), possible);
    for (const id of ["thumbs-up", "thumbs-down"]) {
      $(id).disabled = false;
      $(id).setAttribute("aria-pressed", "false");
    }
    show($("thumbs-up"), possible && !answer.abstained && Boolean(answer.sql));
    show($("correction-form"), false);
    $("corrected-sql").value = "";
    $("feedback-comment").value = "";
    show($("feedback-status"), false);
  }

  function setResult(result) {
    const section = $("result");
    if (!result || !Array.isArray(result.columns) || !result.columns.length) {
      state.columns = [];
      state.rows = [];
      state.resultId = null;
      show(section, Boolean(result));
      if (result) {
        // A statement without columns: nothing to grid
        clear($("result-table").tHead);
        clear($("result-table").tBodies[0]);
        setText($("result-count"), "no columns");
        show($("pager"), false);
        show($("truncated-notice"), false);
        show($("download-csv"), false);
      }
      return;
    }
    state.columns = result.columns.map(String);
    state.rows = Array.isArray(result.rows) ? result.rows : [];
    state.truncated = Boolean(result.truncated);
    state.resultId = result.id || null;
    state.page = 0;
    show(section, true);
    show($("download-csv"), Boolean(state.resultId));
    const count = state.rows.length;
    setText($("result-count"), `${plural(count, "row")}${state.truncated ? " (cut)" : ""}`);
    const notice = $("truncated-notice");
    show(notice, state.truncated);
    setText(notice, state.truncated
      ? `Only the first ${count} rows are shown: the result was cut at the server's row cap. Refine the question `
        + "or the SQL (a WHERE clause, a LIMIT, an aggregate) to see the rest."
      : "");
    // a column whose values are all numbers (or NULL) is right-aligned, header included
    const numeric = state.columns.map((_, i) => state.rows.some((row) => Array.isArray(row) && typeof row[i] === "number")
      && state.rows.every((row) => !Array.isArray(row) || row[i] === null || typeof row[i] === "number"));
    const head = clear($("result-table").tHead);
    head.append(el("tr", {}, state.columns.map((name, i) => el("th", { scope: "col", class: numeric[i] ? "num" : null },
      name))));
    renderPage();
  }

  function renderPage() {
    const pages = Math.max(1, Math.ceil(state.rows.length / PAGE_SIZE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const body = clear($("result-table").tBodies[0]);
    const start = state.page * PAGE_SIZE;
    const slice = state.rows.slice(start, start + PAGE_SIZE);
    if (!slice.length) {
      body.append(el("tr", {}, el("td", { colspan: Math.max(1, state.columns.length), class: "null" },
        "no rows")));
    }
    for (const row of slice) {
      const cells = Array.isArray(row) ? row : state.columns.map((name) => row[name]);
      body.append(el("tr", {}, cells.map((value) => el("td", {
        class: value === null || value === undefined ? "null" : typeof value === "number" ? "num" : null,
      }, cellText(value)))));
    }
    show($("pager"), pages > 1);
    setText($("page-info"), `Page ${state.page + 1} of ${pages} (rows ${state.rows.length ? start + 1 : 0}–`
      + `${start + slice.length} of ${state.rows.length})`);
    $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page >= pages - 1;
  }

  async function downloadCsv() {
    if (!state.resultId) return;
    hideError();
    try {
      // Fetched (not a plain link) so that the bearer token goes with it.
      const response = await api(`history/${encodeURIComponent(state.resultId)}.csv`);
      if (!response.ok) throw await errorOf(response);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: `sqlwright-${state.resultId}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      showError(error);
    }
  }

  // --- details: confidence, candidates, examples, timings -------------------------------------------
  function renderDetails(answer) {
    const candidates = listOf(answer.candidates);
    const parts = [];
    if (!answer.abstained || answer.confidence) parts.push(`confidence ${percent(answer.confidence)}`);
    if (candidates.length) parts.push(plural(candidates.length, "candidate"));
    setText($("details-summary"), `Confidence and candidates${parts.length ? `: ${parts.join(", ")}` : ""}`);
    const body = clear($("details-body"));
    body.append(el("p", {}, `Confidence: ${percent(answer.confidence)} of the candidates that ran agree on the `
      + "result" + (answer.abstained ? "; the answer was withheld." : ".")));

    if (candidates.length) {
      const table = el("table", { class: "grid" },
        el("caption", { class: "visually-hidden" }, "Candidates"),
        el("thead", {}, el("tr", {}, ["Origin", "SQL", "Rows", "Group", "Error"].map(
          (name) => el("th", { scope: "col" }, name)))),
        el("tbody", {}, candidates.map((c) => el("tr", { class: c.sql && c.sql === answer.sql ? "candidate-chosen" : null },
          el("td", {}, c.origin || ""),
          el("td", {}, el("pre", {}, c.sql || (c.unanswerable !== null && c.unanswerable !== undefined
            ? `UNANSWERABLE ${c.unanswerable}` : ""))),
          el("td", { class: "num" }, c.row_count === null || c.row_count === undefined ? "–" : String(c.row_count)),
          el("td", { class: "num" }, c.group === null || c.group === undefined ? "–" : String(c.group)),
          el("td", {}, c.error || "")))));
      body.append(el("h4", {}, "Candidates"), el("div", { class: "grid-wrap" }, table));
    }

    const examples = listOf(answer.examples);
    if (examples.length) {
      body.append(el("h4", {}, "Stored examples shown to the model"),
        el("ul", {}, examples.map((e) => el("li", {}, `${e.question || ""} `,
          el("span", { class: "hint" }, e.source ? `(${e.source})` : ""),
          el("pre", {}, e.sql || "")))));
    }

    const timings = answer.timings && typeof answer.timings === "object" ? Object.entries(answer.timings) : [];
    if (timings.length) {
      body.append(el("h4", {}, "Timings"),
        el("ul", { class: "timings" }, timings.map(([stage, value]) => el("li", {}, `${stage}: ${seconds(value)}`))));
    }
  }

  // --- SQL: copy, edit, run ---------------------------------------------------------------------
  async function copySql() {
    const text = $("sql-code").textContent;
    try {
      await navigator.clipboard.writeText(text);
      setText($("copy-status"), "copied");
    } catch (_) {
      // No clipboard permission (or not a secure context): select the text for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents($("sql-code"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      setText($("copy-status"), "selected: press Ctrl+C to copy");
    }
  }

  function openEditor() {
    $("sql-editor").value = $("sql-code").textContent;
    show($("sql-form"), true);
    show($("sql-view"), false);
    $("edit-sql").disabled = true;
    $("sql-editor").focus();
  }

  function closeEditor() {
    show($("sql-form"), false);
    show($("sql-view"), true);
    $("edit-sql").disabled = false;
  }

  async function runSql(sql) {
    const errorBox = $("sql-error");
    hideError(errorBox);
    show($("sql-status"), false);
    const button = $("run-sql");
    button.disabled = true;
    try {
      const body = { sql };
      if (state.db) body.db = state.db;
      const result = await apiJSON("sql", postJSON(body));
      setText($("sql-code"), sql);
      show($("sql-origin"), false);
      closeEditor();
      show($("abstention"), false);
      setResult({ columns: result.columns, rows: result.rows, truncated: result.truncated, id: result.id });
      renderChart(result.chart || null);
      state.editedSql = sql;
      if (state.askId) $("corrected-sql").value = sql;
      const status = $("sql-status");
      setText(status, `Ran your SQL${result.seconds !== undefined ? ` in ${seconds(result.seconds)}` : ""}.`
        + (state.askId ? " If it answers the question, press “Wrong” and send it as the right SQL to teach it."
          : ""));
      show(status, true);
      loadHistory();
    } catch (error) {
      showError(error.status && error.status < 500 ? new ApiError(error.status, `Refused: ${error.message}`)
        : error, errorBox);
    } finally {
      button.disabled = false;
    }
  }

  // --- feedback ---------------------------------------------------------------------------------
  async function sendFeedback(rating, sql, comment) {
    if (!state.askId) return;
    const status = $("feedback-status");
    show(status, false);
    const body = { id: state.askId, rating };
    if (sql) body.sql = sql;
    if (comment) body.comment = comment;
    try {
      const result = await apiJSON("feedback", postJSON(body));
      const stored = Boolean(result && (result.example
        || (result.feedback && result.feedback.example_id !== null && result.feedback.example_id !== undefined)));
      setText(status, rating === "up"
        ? (stored ? "Thanks: stored as an example; the model sees it for similar questions."
          : "Thanks for the feedback.")
        : (stored ? "Thanks: your SQL was checked and stored as an example."
          : "Thanks: noted as wrong."));
      show(status, true);
      $(rating === "up" ? "thumbs-up" : "thumbs-down").setAttribute("aria-pressed", "true");
      $("thumbs-up").disabled = true;
      $("thumbs-down").disabled = true;
      show($("correction-form"), false);
    } catch (error) {
      setText(status, `Not stored: ${error.message}`);
      show(status, true);
    }
  }

  // --- chart: SVG from the typed spec -----------------------------------------------------------
  // Drawn at the width it is shown at (text stays legible in a narrow window), again when that changes.
  function renderChart(spec) {
    const figure = $("chart");
    const canvas = clear($("chart-canvas"));
    state.chart = spec || null;
    show(figure, Boolean(spec));
    let drawn = null;
    try {
      state.chartWidth = Math.round(canvas.clientWidth) || 720;
      drawn = spec ? drawChart(spec, state.chartWidth) : null;
    } catch (error) {
      drawn = null;  // a spec this page does not understand: the table still shows the data
    }
    show(figure, Boolean(drawn));
    if (!drawn) return;
    canvas.append(drawn);
    const points = listOf(spec.data).length;
    setText($("chart-caption"), spec.truncated ? `The chart shows part of the result: ${plural(points, "point")}.` : "");
  }

  function toNumber(value) {
    if (value === null || value === undefined || value === "" || typeof value === "boolean") return NaN;
    return Number(value);
  }

  function toTime(value) {
    if (value === null || value === undefined) return NaN;
    if (typeof value === "number") return value;
    const text = String(value);
    if (/^\d{4}$/.test(text)) return Date.UTC(Number(text), 0, 1);
    if (/^\d{4}-\d{2}$/.test(text)) return Date.parse(`${text}-01T00:00:00Z`);
    return Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  }

  // About `count` round tick values, the first at or below `low`, the last at or above `high`.
  function niceTicks(low, high, count) {
    const span = high - low;
    const rough = span / Math.max(1, count);
    const magnitude = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => span / s <= count) || 10 * magnitude;
    const first = Math.floor(low / step) * step;
    const ticks = [];
    // from at or below `low` to at or above `high`, so that the axis ends on a labelled tick
    for (let v = first; ticks.length < 2 || ticks[ticks.length - 1] < high - step * 1e-9; v += step) {
      ticks.push(Number(v.toPrecision(12)));
      if (ticks.length > 50) break;
    }
    return ticks;
  }

  function shorten(text, max) {
    const value = String(text);
    return value.length > max ? `${value.slice(0, max - 1)}…` : value;
  }

  function drawChart(spec, shownWidth = 720) {
    const kind = spec.kind;
    if (!["bar", "line", "point"].includes(kind) || !spec.x || !Array.isArray(spec.y) || !spec.y.length) return null;
    const data = listOf(spec.data).filter(Array.isArray);
    if (!data.length) return null;
    const series = spec.y.slice(0, 12).map((y, i) => ({ field: String(y.field ?? `y${i + 1}`), index: i + 1 }));

    const W = Math.max(300, Math.min(1000, shownWidth));
    const H = W < 500 ? 280 : 360;
    const legend = series.length > 1;
    const margin = { top: spec.title ? 36 : 16, right: 32, bottom: 64, left: W < 500 ? 56 : 72 };
    if (legend) margin.top += 18;
    const width = W - margin.left - margin.right;
    const height = H - margin.top - margin.bottom;

    // y: every series' values, including 0 for bars
    const values = [];
    for (const row of data) for (const s of series) {
      const v = toNumber(row[s.index]);
      if (Number.isFinite(v)) values.push(v);
    }
    if (!values.length) return null;
    let yLow = Math.min(...values);
    let yHigh = Math.max(...values);
    if (kind === "bar") { yLow = Math.min(0, yLow); yHigh = Math.max(0, yHigh); }
    if (yLow === yHigh) { yLow -= 1; yHigh += 1; }
    const yTicks = niceTicks(yLow, yHigh, 5);
    yLow = Math.min(yLow, yTicks[0]);
    yHigh = Math.max(yHigh, yTicks[yTicks.length - 1]);
    const y = (v) => margin.top + height - ((v - yLow) / (yHigh - yLow)) * height;

    // x: a band per row (bars, nominal x, or x values that are not numbers/dates), else linear
    const xType = spec.x.type;
    const xValue = xType === "temporal" ? toTime : toNumber;
    const linear = kind !== "bar" && xType !== "nominal" && data.every((row) => Number.isFinite(xValue(row[0])));
    let x;
    let xLow = 0;
    let xHigh = 1;
    const band = width / data.length;
    if (linear) {
      const xs = data.map((row) => xValue(row[0]));
      xLow = Math.min(...xs);
      xHigh = Math.max(...xs);
      if (xLow === xHigh) { xLow -= 1; xHigh += 1; }
      x = (value) => margin.left + ((xValue(value) - xLow) / (xHigh - xLow)) * width;
    } else {
      x = (_value, i) => margin.left + band * (i + 0.5);
    }

    const title = spec.title ? String(spec.title) : `${series.map((s) => s.field).join(", ")} by ${spec.x.field}`;
    const titleId = `chart-title-${Math.random().toString(36).slice(2)}`;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": titleId,
      class: `chart-svg chart-${kind}`, "data-kind": kind, preserveAspectRatio: "xMidYMid meet" });
    root.append(svg("title", { id: titleId }, title));
    if (spec.title) root.append(svg("text", { x: W / 2, y: 22, "text-anchor": "middle", class: "chart-title" }, title));

    // grid and y axis
    const yAxis = svg("g", { class: "y-axis" });
    for (const tick of yTicks) {
      if (tick < yLow - 1e-9 || tick > yHigh + 1e-9) continue;
      yAxis.append(svg("line", { x1: margin.left, x2: margin.left + width, y1: y(tick), y2: y(tick), class: "grid-line" }));
      yAxis.append(svg("text", { x: margin.left - 8, y: y(tick) + 4, "text-anchor": "end", class: "tick-label" },
        Math.abs(tick) >= 10000 ? compactFormat.format(tick) : numberFormat.format(tick)));
    }
    yAxis.append(svg("line", { x1: margin.left, x2: margin.left, y1: margin.top, y2: margin.top + height, class: "axis-line" }));
    root.append(yAxis);
    const yLabel = shorten(series.map((s) => s.field).join(", "), 48);
    root.append(svg("text", { x: -(margin.top + height / 2), y: 16, transform: "rotate(-90)", "text-anchor": "middle",
      class: "axis-label" }, yLabel));

    // x axis
    const xAxis = svg("g", { class: "x-axis" });
    const baseline = kind === "bar" ? y(0) : margin.top + height;
    xAxis.append(svg("line", { x1: margin.left, x2: margin.left + width, y1: baseline, y2: baseline, class: "axis-line" }));
    const labels = [];
    if (linear) {
      if (xType === "temporal") {
        const step = Math.max(1, Math.ceil(data.length / Math.max(2, Math.floor(width / 75))));
        const sorted = [...data].sort((a, b) => xValue(a[0]) - xValue(b[0]));
        sorted.forEach((row, i) => { if (i % step === 0 || i === sorted.length - 1) labels.push([x(row[0]), String(row[0])]); });
      } else {
        for (const tick of niceTicks(xLow, xHigh, Math.max(2, Math.min(6, Math.floor(width / 70))))) {
          if (tick >= xLow - 1e-9 && tick <= xHigh + 1e-9) labels.push([x(tick), numberFormat.format(tick)]);
        }
      }
    } else {
      const maxLabels = Math.max(2, Math.floor(width / 28));
      const step = Math.max(1, Math.ceil(data.length / maxLabels));
      data.forEach((row, i) => { if (i % step === 0) labels.push([x(row[0], i), cellText(row[0])]); });
    }
    const rotate = labels.length > 8 || labels.some(([, text]) => text.length > 10);
    for (const [position, text] of labels) {
      const label = svg("text", { x: position, y: margin.top + height + 16, class: "tick-label",
        "text-anchor": rotate ? "end" : "middle",
        transform: rotate ? `rotate(-35 ${position} ${margin.top + height + 16})` : null }, shorten(text, 16));
      if (text.length > 16) label.append(svg("title", {}, text));
      xAxis.append(label);
    }
    root.append(xAxis);
    root.append(svg("text", { x: margin.left + width / 2, y: rotate ? H - 6 : margin.top + height + 40,
      "text-anchor": "middle", class: "axis-label" },
      shorten(spec.x.field, 60)));

    // marks
    const marks = svg("g", { class: "marks" });
    series.forEach((s, si) => {
      const color = `series-${si % SERIES_COLORS}`;
      const points = [];
      data.forEach((row, i) => {
        const v = toNumber(row[s.index]);
        if (!Number.isFinite(v)) return;
        points.push({ x: x(row[0], i), y: y(v), label: `${cellText(row[0])}: ${cellText(row[s.index])}`
          + (series.length > 1 ? ` (${s.field})` : ""), sort: linear ? xValue(row[0]) : i });
        if (kind === "bar") {
          const inner = band * 0.8;
          const barWidth = Math.max(1, inner / series.length);
          const left = x(row[0], i) - inner / 2 + si * barWidth;
          const top = Math.min(y(v), y(0));
          const rect = svg("rect", { x: left, y: top, width: Math.max(1, barWidth - 1),
            height: Math.max(1, Math.abs(y(v) - y(0))), class: `bar ${color}` });
          rect.append(svg("title", {}, points[points.length - 1].label));
          marks.append(rect);
        }
      });
      if (kind === "line" && points.length) {
        points.sort((a, b) => a.sort - b.sort);
        const path = points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
        marks.append(svg("path", { d: path, class: `series-line ${color}` }));
      }
      if (kind === "point" || (kind === "line" && points.length <= 60)) {
        for (const p of points) {
          const dot = svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: kind === "point" ? 4 : 3,
            class: `point ${color}` });
          dot.append(svg("title", {}, p.label));
          marks.append(dot);
        }
      }
    });
    root.append(marks);

    if (legend) {
      const group = svg("g", { class: "legend" });
      let offset = margin.left;
      const top = (spec.title ? 36 : 12);
      series.forEach((s, si) => {
        group.append(svg("rect", { x: offset, y: top, width: 10, height: 10, class: `series-${si % SERIES_COLORS}` }));
        const text = shorten(s.field, 24);
        group.append(svg("text", { x: offset + 14, y: top + 9, class: "legend-label" }, text));
        offset += 28 + text.length * 7;
      });
      root.append(group);
    }
    return root;
  }

  // --- wiring -----------------------------------------------------------------------------------
  async function selectDatabase(name) {
    state.db = name;
    newConversation();
    await Promise.all([loadSchema(), loadHistory()]);
  }

  function wire() {
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const question = $("question").value.trim();
      if (question) ask(question);
    });
    $("question").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("ask-form").requestSubmit();
      }
    });
    $("stop-button").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
    $("new-conversation").addEventListener("click", newConversation);
    $("forget-token").addEventListener("click", () => saveToken(""));
    $("db-select").addEventListener("change", (event) => selectDatabase(event.target.value));
    $("schema-filter").addEventListener("input", filterSchema);
    $("refresh-history").addEventListener("click", loadHistory);
    $("copy-sql").addEventListener("click", copySql);
    $("edit-sql").addEventListener("click", openEditor);
    $("cancel-edit").addEventListener("click", closeEditor);
    $("sql-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const sql = $("sql-editor").value.trim();
      if (sql) runSql(sql);
    });
    $("page-prev").addEventListener("click", () => { state.page -= 1; renderPage(); });
    $("page-next").addEventListener("click", () => { state.page += 1; renderPage(); });
    $("download-csv").addEventListener("click", downloadCsv);
    $("thumbs-up").addEventListener("click", () => sendFeedback("up"));
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        const width = Math.round($("chart-canvas").clientWidth);
        if (state.chart && width && Math.abs(width - state.chartWidth) > 20) renderChart(state.chart);
      }, 150);
    });
    $("thumbs-down").addEventListener("click", () => {
      const form = $("correction-form");
      show(form, form.hidden);
      if (!form.hidden) {
        if (!$("corrected-sql").value) $("corrected-sql").value = state.editedSql || "";
        $("corrected-sql").focus();
      }
    });
    $("correction-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sendFeedback("down", $("corrected-sql").value.trim(), $("feedback-comment").value.trim());
    });
  }

  async function start() {
    wire();
    show($("forget-token"), Boolean(state.token));
    try {
      await loadDatabases();
      loadInfo();
      await Promise.all([loadSchema(), loadHistory()]);
      document.body.dataset.ready = "true";  // for tests and scripts: the first data has arrived
    } catch (error) {
      showError(error);
      document.body.dataset.ready = "error";
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
