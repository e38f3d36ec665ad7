/*
 * The socket console: one script for every demo page.
 *
 * It drives the browser's WebSocket API directly (no library in between) and records what
 * the API reported, so a person reads it in the log and the browser tests read the same
 * records from `window.socketConsoles`. Every event is observed twice, through the `on...`
 * property and through addEventListener, and the log says which of the two fired.
 */
"use strict";

const EVENT_TYPES = ["open", "message", "error", "close"];
const STATE_NAMES = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"];
// Close codes after which the server (not the visitor or the app) went away.
// 4503: the application cannot serve the socket now (channel layer unreachable, or shutting down).
const ABNORMAL_CODES = new Set([1001, 1006, 1011, 1012, 1013, 1014, 4503]);
const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 10000;
const PREVIEW_CHARS = 160;

function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function fromHex(text) {
  const digits = text.replace(/[^0-9a-fA-F]/g, "");
  if (digits.length % 2) throw new SyntaxError("hex needs an even number of digits");
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function randomId() {
  // randomUUID needs a secure context; 127.0.0.1 is one, a LAN address is not.
  if (crypto.randomUUID) return crypto.randomUUID();
  return toHex(crypto.getRandomValues(new Uint8Array(16))).replace(/ /g, "");
}

function clock(date) {
  return date.toISOString().slice(11, 23);
}

/** Set an element's text, unless it already shows exactly that. */
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/** Set one `data-` attribute of an element, unless it already has that value. */
function setData(element, key, value) {
  if (element.dataset[key] !== value) element.dataset[key] = value;
}

/** Describe a message's data the same way whatever binaryType delivered it. */
async function describeData(data) {
  if (typeof data === "string") {
    return { dataType: "string", text: data, size: utf8Length(data) };
  }
  const buffer = data instanceof Blob ? await data.arrayBuffer() : data;
  const bytes = new Uint8Array(buffer);
  return { dataType: data instanceof Blob ? "Blob" : "ArrayBuffer", hex: toHex(bytes), size: bytes.length };
}

class SocketConsole extends EventTarget {
  constructor(root) {
    super();
    this.root = root;
    this.ws = null;
    this.records = [];      // every observation, for the log and for tests
    this.readyStates = [];  // readyState as sampled at each step of the current socket
    this.reconnect = { attempt: 0, timer: null, active: false };
    // The backoff policy; the browser tests shorten it to see the cap within seconds.
    this.backoff = { baseMs: RECONNECT_BASE_MS, capMs: RECONNECT_CAP_MS };
    this.journalId = null;
    this.journalTimer = null;
    // performance.now() of the last send: each answer says how long after it it came.
    this.lastSentAt = null;
    this.el = (name) => root.querySelector(`[data-${name}]`);
    this.bindControls();
    this.refreshStatus();
    this.statusTimer = setInterval(() => this.refreshStatus(), 100);
  }

  // ------------------------------------------------------------------ recording

  /** Append a record to the log (and to `records`), and tell listeners. */
  note(kind, details = {}, via = []) {
    const record = { kind, at: Date.now(), via, readyState: this.ws ? this.ws.readyState : null, ...details };
    this.records.push(record);
    this.renderRecord(record);
    this.refreshStatus(); // at once, not at the next tick: buttons follow the socket's state
    this.dispatchEvent(new CustomEvent(kind, { detail: record }));
    return record;
  }

  renderRecord(record) {
    const log = this.el("log");
    const item = document.createElement("li");
    item.className = `log-entry log-${record.kind}`;
    const time = document.createElement("time");
    time.textContent = clock(new Date(record.at));
    const kind = document.createElement("span");
    kind.className = "log-kind";
    kind.textContent = record.kind;
    const text = document.createElement("span");
    text.className = "log-text";
    text.textContent = this.summarize(record);
    item.append(time, kind, text);
    if (record.via.length) {
      const via = document.createElement("span");
      via.className = "log-via";
      via.textContent = `via ${record.via.join(" + ")}`;
      item.append(via);
    }
    log.append(item);
    // The list sits in its scrolling box (role="log"): show the newest line.
    const box = log.closest(".log");
    box.scrollTop = box.scrollHeight;
  }

  summarize(r) {
    switch (r.kind) {
      case "open":
        return `readyState ${r.readyState} · protocol "${r.protocol}" · extensions "${r.extensions}"`;
      case "message":
        return (r.dataType === "string"
          ? `${r.size} B text: ${r.text.length > PREVIEW_CHARS ? `${r.text.slice(0, PREVIEW_CHARS)}…` : r.text}`
          : `${r.size} B ${r.dataType}: ${r.hex.slice(0, PREVIEW_CHARS * 3)}${r.hex.length > PREVIEW_CHARS * 3 ? "…" : ""}`)
          + (r.sinceSendMs === null ? "" : ` · ${r.sinceSendMs} ms after the last send`);
      case "error":
        return "the browser gives no details (a close event follows)";
      case "close":
        return `code ${r.code} · reason "${r.reason}" · wasClean ${r.wasClean}`;
      default:
        return r.message || "";
    }
  }

  // ------------------------------------------------------------------ the socket

  url({ journal = false } = {}) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(this.el("endpoint").value, `${scheme}//${location.host}`);
    if (journal) url.searchParams.set("journal", journal);
    // A page may add parameters of its own (lobby.js: the last chat id it saw, to resume).
    for (const [key, value] of Object.entries(this.extraParams ? this.extraParams() : {})) {
      url.searchParams.set(key, value);
    }
    return url.href;
  }

  protocols() {
    const offer = this.el("subprotocol");
    return offer && offer.checked ? [offer.value] : [];
  }

  /** Open a socket to the chosen endpoint, wiring both handler styles to every event. */
  connect({ fromReconnect = false } = {}) {
    if (!fromReconnect) this.stopReconnecting();
    if (this.ws && this.ws.readyState < WebSocket.CLOSING) this.ws.close(1000, "reconnecting");
    this.journalId = this.el("journal")?.checked ? randomId() : null;
    const ws = new WebSocket(this.url({ journal: this.journalId }), this.protocols());
    ws.binaryType = this.el("binary-type").value;
    this.ws = ws;
    this.wasOpen = false;
    this.lastSentAt = null;
    this.readyStates = [ws.readyState];
    this.clearJournal();
    this.note("connect", { message: `new WebSocket("${ws.url}", ${JSON.stringify(this.protocols())})`, url: ws.url });

    const pending = new Map();
    const observe = (event, via) => {
      let entry = pending.get(event);
      if (!entry) {
        entry = { via: [] };
        pending.set(event, entry);
        // Both handlers run inside one dispatch; a task (not a microtask, which would run
        // between them) sees both.
        setTimeout(() => {
          pending.delete(event);
          this.observed(ws, event, entry.via);
        }, 0);
      }
      entry.via.push(via);
    };
    for (const type of EVENT_TYPES) {
      ws[`on${type}`] = (event) => observe(event, `on${type}`);
      ws.addEventListener(type, (event) => observe(event, "addEventListener"));
    }
    return ws;
  }

  async observed(ws, event, via) {
    if (ws !== this.ws) return;
    this.readyStates.push(ws.readyState);
    switch (event.type) {
      case "open":
        this.wasOpen = true;
        if (this.reconnect.attempt) {
          this.note("reconnected", { message: `back after ${this.reconnect.attempt} attempt(s)` });
        }
        this.reconnect.attempt = 0;
        this.note("open", { protocol: ws.protocol, extensions: ws.extensions }, via);
        break;
      case "message": {
        // event.timeStamp and performance.now() share a clock: the wait ends at arrival.
        const sinceSendMs = this.lastSentAt === null ? null : Math.round(event.timeStamp - this.lastSentAt);
        this.note("message", { ...(await describeData(event.data)), sinceSendMs }, via);
        const wait = this.el("last-wait");
        if (wait && sinceSendMs !== null) wait.textContent = `${sinceSendMs} ms after the send`;
        break;
      }
      case "error":
        this.note("error", {}, via);
        break;
      case "close":
        this.note("close", { code: event.code, reason: event.reason, wasClean: event.wasClean }, via);
        this.maybeReconnect(event.code);
        break;
      default:
        break;
    }
    this.scheduleJournal();
  }

  /** Call a WebSocket method, logging what it threw instead of letting the page break. */
  attempt(label, action) {
    try {
      action();
      this.readyStates.push(this.ws ? this.ws.readyState : null);
      this.note("call", { message: label });
      this.scheduleJournal();
      return null;
    } catch (error) {
      this.note("threw", { message: `${label} threw ${error.name}: ${error.message}`, error: error.name });
      return error;
    }
  }

  send(data, label) {
    if (!this.ws) return this.note("hint", { message: "connect first" });
    const before = this.ws.bufferedAmount;
    const sentAt = performance.now();
    const error = this.attempt(label, () => this.ws.send(data));
    if (!error) {
      this.lastSentAt = sentAt;
      this.records[this.records.length - 1].bufferedAmount = [before, this.ws.bufferedAmount];
    }
    return error;
  }

  sendText(text) {
    return this.send(text, `send(text, ${utf8Length(text)} B)`);
  }

  sendBytes(bytes, as) {
    const data = as === "Blob" ? new Blob([bytes]) : bytes.slice().buffer;
    return this.send(data, `send(${as}, ${bytes.length} B)`);
  }

  sendJSON(value) {
    return this.sendText(JSON.stringify(value));
  }

  close(code, reason) {
    if (!this.ws) return this.note("hint", { message: "connect first" });
    this.stopReconnecting();
    const args = code === undefined ? [] : reason === undefined ? [code] : [code, reason];
    const label = `close(${args.map((a) => JSON.stringify(a)).join(", ")})`;
    return this.attempt(label, () => this.ws.close(...args));
  }

  // ------------------------------------------------------------------ reconnecting

  maybeReconnect(code) {
    const wanted = this.el("reconnect")?.checked;
    // Only a socket that was open, or a reconnect already under way, retries: a handshake
    // the server refused would be refused again.
    if (!wanted || !ABNORMAL_CODES.has(code) || !(this.wasOpen || this.reconnect.active)) {
      this.reconnect.active = false;
      return;
    }
    this.reconnect.active = true;
    this.reconnect.attempt += 1;
    const { baseMs, capMs } = this.backoff;
    const ceiling = Math.min(capMs, baseMs * 2 ** (this.reconnect.attempt - 1));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2)); // "equal jitter"
    this.note("reconnecting", {
      message: `attempt ${this.reconnect.attempt} in ${delay} ms (backoff ${ceiling} ms, jittered)`,
      attempt: this.reconnect.attempt,
      delay,
      ceiling,
    });
    this.reconnect.timer = setTimeout(() => this.connect({ fromReconnect: true }), delay);
  }

  stopReconnecting() {
    clearTimeout(this.reconnect.timer);
    this.reconnect = { attempt: 0, timer: null, active: false };
  }

  // ------------------------------------------------------------------ browser quirks

  /** A short-lived second socket, so the quirks never disturb the console's own. */
  probe() {
    return new WebSocket(this.url(), this.protocols());
  }

  quirkSendWhileConnecting() {
    const probe = this.probe();
    let error = null;
    try {
      probe.send("too early");
    } catch (e) {
      error = e;
    }
    this.note("quirk", {
      name: "send-while-connecting",
      error: error && error.name,
      message: error
        ? `send() at readyState ${probe.readyState} threw ${error.name}`
        : "send() while CONNECTING did not throw",
    });
    probe.close();
  }

  quirkSendAfterClose() {
    const probe = this.probe();
    probe.onopen = () => probe.close();
    probe.onmessage = (event) => this.note("quirk", { name: "send-after-close-delivered", message: String(event.data) });
    probe.onclose = () => {
      const before = probe.bufferedAmount;
      let error = null;
      try {
        probe.send("into the void");
      } catch (e) {
        error = e;
      }
      this.note("quirk", {
        name: "send-after-close",
        error: error && error.name,
        bufferedAmount: [before, probe.bufferedAmount],
        message: error
          ? `send() on a CLOSED socket threw ${error.name}`
          : `send() at readyState ${probe.readyState} was silently discarded ` +
            `(bufferedAmount ${before} → ${probe.bufferedAmount}: counted, never sent)`,
      });
    };
  }

  quirkClose(args, name) {
    const probe = this.probe();
    let error = null;
    try {
      probe.close(...args);
    } catch (e) {
      error = e;
      probe.close();
    }
    this.note("quirk", {
      name,
      error: error && error.name,
      message: error ? `close(${args.map((a) => JSON.stringify(a)).join(", ")}) threw ${error.name}: ${error.message}` : "accepted",
    });
  }

  // ------------------------------------------------------------------ the server's side

  clearJournal() {
    this.journal = null; // the previous socket's events must not pass for this one's
    const list = this.el("journal-log");
    if (list) list.replaceChildren();
  }

  scheduleJournal() {
    if (!this.journalId || !this.el("journal-log")) return;
    clearTimeout(this.journalTimer);
    const id = this.journalId;
    this.journalTimer = setTimeout(() => this.fetchJournal(id), 150);
  }

  async fetchJournal(id) {
    const response = await fetch(`/journal/${id}/`, { headers: { Accept: "application/json" } });
    if (!response.ok || id !== this.journalId) return;
    const { events } = await response.json();
    this.journal = events;
    const list = this.el("journal-log");
    list.replaceChildren(
      ...events.map((event) => {
        const item = document.createElement("li");
        item.className = `journal-entry journal-${event.direction}`;
        const { t, direction, type, ...keys } = event;
        const arrow = direction === "received" ? "→ consumer" : "consumer →";
        // Strings as they are (a JSON text inside JSON would show every quote escaped).
        const fields = Object.entries(keys).map(
          ([key, value]) => `${key}=${typeof value === "string" ? `«${value}»` : JSON.stringify(value)}`,
        );
        item.textContent = `${clock(new Date(t * 1000))} ${arrow} ${type} ${fields.join(" ")}`;
        return item;
      }),
    );
    // The disconnect event reaches the consumer after the browser's close: look once more.
    if (this.ws && this.ws.readyState === WebSocket.CLOSED && !events.some((e) => e.type === "websocket.disconnect")) {
      setTimeout(() => this.fetchJournal(id), 300);
    }
  }

  // ------------------------------------------------------------------ the page

  // Ten times a second (bufferedAmount has no event), so only what changed is written: each
  // write costs the page a style pass, a layout and a paint, even of the same text.
  refreshStatus() {
    const ws = this.ws;
    const state = ws ? ws.readyState : null;
    setText(this.el("ready-state"), ws ? `${state} ${STATE_NAMES[state]}` : "no socket");
    setData(this.el("ready-state"), "state", ws ? STATE_NAMES[state] : "NONE");
    setText(this.el("buffered"), ws ? String(ws.bufferedAmount) : "–");
    setText(this.el("protocol"), ws ? `"${ws.protocol}"` : "–");
    const open = state === WebSocket.OPEN;
    for (const button of this.root.querySelectorAll("[data-needs-open]")) {
      if (button.disabled === open) button.disabled = !open;
    }
  }

  bindControls() {
    const on = (name, handler) => this.el(name)?.addEventListener("click", handler);
    this.root.querySelector("form[data-connect]")?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.connect();
    });
    this.el("binary-type").addEventListener("change", (event) => {
      if (this.ws) this.ws.binaryType = event.target.value;
      this.note("call", { message: `binaryType = "${event.target.value}"` });
    });
    this.el("endpoint").addEventListener("change", () => this.showCommands());
    this.showCommands();
    on("send-text", () => this.sendText(this.el("text").value));
    on("send-blob", () => this.sendHex("Blob"));
    on("send-buffer", () => this.sendHex("ArrayBuffer"));
    on("send-large", () => this.sendText("x".repeat(Number(this.el("send-large").value))));
    on("close", () => this.closeFromForm());
    on("close-bare", () => this.close());
    on("clear", () => {
      this.el("log").replaceChildren();
    });
    on("quirk-connecting", () => this.quirkSendWhileConnecting());
    on("quirk-after-close", () => this.quirkSendAfterClose());
    on("quirk-code", () => this.quirkClose([1001], "close-invalid-code"));
    on("quirk-reason", () => this.quirkClose([1000, "é".repeat(62)], "close-long-reason"));
    for (const button of this.root.querySelectorAll("[data-command]")) {
      button.addEventListener("click", () => this.sendText(button.dataset.command));
    }
    // Note buttons send their command with the text typed into the note field.
    for (const button of this.root.querySelectorAll("[data-note-command]")) {
      button.addEventListener("click", () => {
        this.sendJSON({ ...JSON.parse(button.dataset.noteCommand), text: this.el("note-text").value });
      });
    }
  }

  sendHex(as) {
    try {
      this.sendBytes(fromHex(this.el("hex").value), as);
    } catch (error) {
      this.note("hint", { message: `bytes: ${error.message}` });
    }
  }

  closeFromForm() {
    const code = this.el("close-code").value.trim();
    const reason = this.el("close-reason").value;
    if (code === "") return this.close();
    return this.close(Number(code), reason);
  }

  showCommands() {
    const kind = this.el("endpoint").selectedOptions[0]?.dataset.kind;
    const commands = this.el("commands");
    if (commands) commands.hidden = kind !== "json";
  }
}

window.SocketConsole = SocketConsole;
window.socketConsoles = Array.from(document.querySelectorAll("[data-socket-console]"), (root) => new SocketConsole(root));
// Compact consoles (the side-by-side panes) open their socket as the page loads.
for (const sc of window.socketConsoles) if (sc.root.hasAttribute("data-autoconnect")) sc.connect();
