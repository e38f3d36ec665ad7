/*
 * The EventSource console on /http/: the browser's EventSource API, driven directly.
 *
 * Every event is observed through the `on...` property where one exists (onopen, onmessage,
 * onerror) and through addEventListener; named events (hello, bye, chat, gap) have no
 * property, so only addEventListener hears them. Each record says which saw it. The browser
 * tests read the same records from `window.sseConsole.records`.
 */
"use strict";

(() => {
  const root = document.querySelector("[data-event-source]");
  if (!root) return;
  const el = (name) => root.querySelector(`[data-${name}]`);
  const STATES = ["CONNECTING", "OPEN", "CLOSED"];
  const NAMED = ["hello", "bye", "chat", "gap", "unavailable"];
  const viaNodes = new WeakMap(); // record -> its "via" element in the log

  const sse = {
    es: null,
    records: [],
    seen: new WeakMap(), // event object -> its record, so both handlers share one record

    note(kind, event, via, details = {}) {
      let record = event && this.seen.get(event);
      if (record) {
        record.via.push(via);
        renderVia(record);
        return record;
      }
      record = {
        kind,
        at: Date.now(),
        via: [via],
        readyState: this.es ? this.es.readyState : null,
        ...details,
      };
      if (event) this.seen.set(event, record);
      this.records.push(record);
      render(record);
      refresh();
      return record;
    },

    connect(url, { withCredentials = false } = {}) {
      if (this.es) this.close();
      const es = new EventSource(url, { withCredentials });
      this.es = es;
      this.note("new", null, "constructor", { url: es.url, withCredentials: es.withCredentials });
      const fromEvent = (event) => ({
        id: event.lastEventId,
        data: event.data === undefined ? undefined : parse(event.data),
      });
      // The property handlers...
      es.onopen = (event) => this.note("open", event, "onopen");
      es.onmessage = (event) => this.note("message", event, "onmessage", fromEvent(event));
      es.onerror = (event) => this.note("error", event, "onerror");
      // ...and the listeners, for the same events and for the named ones.
      for (const type of ["open", "message", "error", ...NAMED]) {
        es.addEventListener(type, (event) => {
          if (es !== this.es) return;
          this.note(type, event, "addEventListener", type === "open" || type === "error" ? {} : fromEvent(event));
        });
      }
      return es;
    },

    close() {
      if (!this.es) return;
      this.es.close(); // readyState 2 at once; no event fires, and no reconnect follows
      this.note("close", null, "close()", { readyState: this.es.readyState });
    },
  };

  function parse(data) {
    try {
      return JSON.parse(data);
    } catch {
      return data;
    }
  }

  function summarize(r) {
    switch (r.kind) {
      case "new":
        return `new EventSource("${r.url}", {withCredentials: ${r.withCredentials}}) · readyState ${r.readyState}`;
      case "open":
        return `readyState ${r.readyState}`;
      case "error":
        return r.readyState === 2
          ? "readyState 2: the browser gave up (not 200, or not text/event-stream)"
          : "readyState 0: the response ended; the browser reconnects after the retry delay";
      case "close":
        return "readyState 2: closed by the page; the browser will not reconnect";
      default:
        return `${r.id ? `id ${r.id} · ` : ""}${JSON.stringify(r.data)}`;
    }
  }

  function render(record) {
    const item = document.createElement("li");
    item.className = `log-entry log-${record.kind === "message" ? "message" : record.kind}`;
    const time = document.createElement("time");
    time.textContent = new Date(record.at).toISOString().slice(11, 23);
    const kind = document.createElement("span");
    kind.className = "log-kind";
    kind.textContent = record.kind;
    const text = document.createElement("span");
    text.textContent = summarize(record); // text, never HTML: chat comes from other people
    const via = document.createElement("span");
    via.className = "log-via";
    item.append(time, kind, text, via);
    viaNodes.set(record, via);
    renderVia(record);
    const log = el("stream-log");
    log.append(item);
    // The list sits in its scrolling box (role="log"): show the newest line.
    const box = log.closest(".log");
    box.scrollTop = box.scrollHeight;
  }

  function renderVia(record) {
    const node = viaNodes.get(record);
    if (node) node.textContent = `via ${record.via.join(" + ")}`;
  }

  // Set an element's text (or a data- attribute) unless it already shows exactly that: refresh
  // runs ten times a second, and every write costs the page a style pass, a layout and a paint.
  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  function refresh() {
    const es = sse.es;
    const state = el("stream-state");
    setText(state, es ? `${es.readyState} ${STATES[es.readyState]}` : "no stream");
    const name = es ? STATES[es.readyState] : "";
    if (state.dataset.state !== name) state.dataset.state = name;
    const last = sse.records.findLast((r) => r.id);
    setText(el("last-event-id"), last ? last.id : "–");
    setText(el("stream-where"), es ? es.url : "–");
  }

  el("stream-connect").addEventListener("submit", (event) => {
    event.preventDefault();
    let url = el("stream-url").value;
    const perStream = el("per-stream").value;
    if (url === "/sse/ticks/" && perStream) url += `?per_stream=${encodeURIComponent(perStream)}`;
    sse.connect(url, { withCredentials: el("with-credentials").checked });
  });
  el("stream-close").addEventListener("click", () => sse.close());

  const say = el("say");
  if (say) {
    say.addEventListener("submit", async (event) => {
      event.preventDefault();
      const response = await fetch(say.action, { method: "POST", body: new FormData(say) });
      if (response.ok) el("say-text").value = "";
      sse.note("post", null, "fetch", { data: { status: response.status, ...(await response.json()) } });
    });
  }

  refresh(); // at once, as the socket console does: the page never shows a stale status
  setInterval(refresh, 100);
  window.sseConsole = sse;
})();
