/*
 * The lobby on /auth/: a view over the shared socket console (console.js), not a second client.
 *
 * It listens to the console's events and sends through the console, so every frame the lobby
 * exchanges is in the console's log, and the browser tests read the same records.
 */
"use strict";

(() => {
  const sc = window.socketConsoles && window.socketConsoles[0];
  if (!sc) return;
  const endpoint = sc.el("endpoint");

  function choose(path) {
    endpoint.value = path;
    endpoint.dispatchEvent(new Event("change"));
  }

  function clockTime(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString();
  }

  // ------------------------------------------------------------------ anonymous visitors

  const anonymous = document.querySelector("[data-lobby-anonymous]");
  if (anonymous) {
    const result = anonymous.querySelector("[data-try-result]");
    let attempt = null;
    for (const button of anonymous.querySelectorAll("[data-try]")) {
      button.addEventListener("click", () => {
        choose(button.dataset.try);
        attempt = { path: button.dataset.try, opened: false, error: false };
        result.textContent = `connecting to ${attempt.path}…`;
        sc.connect();
      });
    }
    sc.addEventListener("open", () => {
      if (attempt) attempt.opened = true;
    });
    sc.addEventListener("error", () => {
      if (attempt) attempt.error = true;
    });
    sc.addEventListener("close", (event) => {
      if (!attempt) return;
      const { code, reason } = event.detail;
      result.textContent = attempt.opened
        ? `${attempt.path}: accepted, then closed by the server with code ${code}` +
          `${code === 4401 ? " (not logged in)" : ""}; reason "${reason}" ` +
          "(daphne does not send close reasons)."
        : `${attempt.path}: handshake refused. The browser fired ` +
          `${attempt.error ? "error, then " : ""}close with code ${code}; ` +
          "the server's HTTP 403 is not visible to the page.";
      attempt = null;
    });
    return;
  }

  // ------------------------------------------------------------------ the lobby

  const lobby = document.querySelector("[data-lobby]");
  if (!lobby) return;
  const me = lobby.dataset.username;
  const status = lobby.querySelector("[data-lobby-status]");
  const online = lobby.querySelector("[data-online]");
  const chatLog = lobby.querySelector("[data-chat-log]");
  const form = lobby.querySelector("form[data-chat]");
  const input = lobby.querySelector("[data-chat-text]");
  const sendButton = lobby.querySelector("[data-chat-send]");

  function setReady(ready) {
    input.disabled = !ready;
    sendButton.disabled = !ready;
  }

  function showOnline(users) {
    online.replaceChildren(
      ...users.map((user) => {
        const item = document.createElement("li");
        item.dataset.user = user;
        item.textContent = user;
        if (user === me) {
          const you = document.createElement("span");
          you.className = "muted";
          you.textContent = " (you)";
          item.append(you);
        }
        return item;
      }),
    );
  }

  function append(kind, parts) {
    const item = document.createElement("li");
    item.className = `chat-${kind}`;
    item.append(...parts);
    chatLog.append(item);
    // The list sits in its scrolling box (role="log"): show the newest line.
    const box = chatLog.closest(".log");
    box.scrollTop = box.scrollHeight;
    return item;
  }

  // Resuming: every chat message has an id that increases across the deployment. The page
  // remembers the highest it has shown, and a socket it opens again asks for what followed
  // (`?after=<id>`). Messages are shown once each (by id), in id order: live messages from
  // several server processes may arrive out of order.
  const shown = new Set();
  let lastId = 0;
  let everOpen = false;
  sc.extraParams = () => (everOpen ? { after: String(lastId) } : {});

  function showChat({ id, user, text, at }) {
    if (shown.has(id)) return;
    shown.add(id);
    lastId = Math.max(lastId, id);
    const time = document.createElement("time");
    time.textContent = clockTime(at);
    const who = document.createElement("strong");
    who.textContent = `${user}${user === me ? " (you)" : ""}:`;
    const body = document.createElement("span");
    body.textContent = ` ${text}`; // text, never HTML: messages come from other people
    const item = append("message", [time, who, body]);
    item.dataset.user = user;
    item.dataset.id = id;
    const later = [...chatLog.querySelectorAll("li[data-id]")].find((li) => Number(li.dataset.id) > id);
    if (later) chatLog.insertBefore(item, later);
  }

  // A `resume` envelope announces the chat messages that follow it. A fresh socket (no
  // `after`) gets the lobby's most recent ones, the same as a fresh stream on /http/; a socket
  // that reconnects gets what it missed. Either way showChat keeps each id once, in order.
  function showResume({ after, missed, complete }) {
    if (after === null) {
      if (!complete) append("note", [`the ${missed} most recent messages; earlier ones are not shown`]);
      return;
    }
    if (complete && !missed) return;
    const said = `${missed} message${missed === 1 ? "" : "s"} sent while you were away`;
    append("note", [complete ? said : `${said}; older ones are no longer kept, some are missing`]);
  }

  sc.addEventListener("open", () => {
    everOpen = true;
    status.textContent = "open, waiting for hello…";
  });

  sc.addEventListener("message", (event) => {
    const record = event.detail;
    if (record.dataType !== "string") return;
    let data;
    try {
      data = JSON.parse(record.text);
    } catch {
      return;
    }
    switch (data.type) {
      case "hello":
        status.textContent = `connected as ${data.user} (server process ${data.process})`;
        setReady(true);
        break;
      case "presence":
        showOnline(data.users);
        break;
      case "chat":
        showChat(data);
        break;
      case "resume":
        showResume(data);
        break;
      case "error":
        append("error", [`the server refused that: ${data.message}`]);
        break;
      default:
        break;
    }
  });

  sc.addEventListener("close", (event) => {
    const { code } = event.detail;
    setReady(false);
    online.replaceChildren();
    status.textContent =
      code === 4401
        ? "closed with 4401: the session ended (logged out in another tab?). Log in again to rejoin."
        : code === 4503
          ? "closed with 4503: the server cannot serve the lobby right now; reconnecting…"
          : `closed with code ${code}`;
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    sc.sendJSON({ type: "chat", text });
    input.value = "";
    input.focus();
  });

  choose("/ws/auth/");
  sc.connect();
})();
