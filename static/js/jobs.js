/*
 * The jobs panel on /worker/: a view over the shared socket console (console.js).
 *
 * It sends through the console and listens to its records, so every frame is in the
 * console's log and the browser tests read the same records.
 */
"use strict";

(() => {
  const sc = window.socketConsoles && window.socketConsoles[0];
  const panel = document.querySelector("[data-jobs]");
  if (!sc || !panel) return;
  const status = panel.querySelector("[data-jobs-status]");
  const list = panel.querySelector("[data-job-list]");
  const start = panel.querySelector("[data-job-start]");
  const echo = panel.querySelector("[data-job-echo]");
  const rows = new Map(); // job id -> its list item

  function setReady(ready) {
    start.disabled = !ready;
    echo.disabled = !ready;
  }

  function row(job) {
    if (!rows.has(job)) {
      const item = document.createElement("li");
      item.dataset.job = job;
      const label = document.createElement("span");
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      bar.setAttribute("aria-label", `progress of job ${job}`);
      item.append(label, " ", bar);
      list.append(item);
      rows.set(job, item);
    }
    return rows.get(job);
  }

  function say(text, className) {
    const item = document.createElement("li");
    item.className = className;
    item.textContent = text;
    list.append(item);
  }

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
        status.textContent = `socket on server process ${data.process}; worker: ${data.worker}`;
        setReady(true);
        break;
      case "queued":
        row(data.job).querySelector("span").textContent = `job ${data.job}: primes up to ${data.n}, queued by process ${data.process}`;
        break;
      case "progress": {
        const item = row(data.job);
        item.querySelector("progress").value = data.done / data.total;
        item.querySelector("span").textContent = `job ${data.job}: ${data.done} of ${data.total} checked, ${data.primes} primes so far`;
        break;
      }
      case "done": {
        const item = row(data.job);
        item.querySelector("progress").value = 1;
        item.dataset.done = "true";
        item.querySelector("span").textContent =
          `job ${data.job}: ${data.primes} primes up to ${data.n}, in ${data.seconds} s by process ${data.process} (${data.thread})`;
        break;
      }
      case "echo":
        say(`echo answered while jobs run: ${JSON.stringify(data.data)}`, "chat-message");
        break;
      case "error":
        say(`refused: ${data.code}: ${data.message}`, "chat-error");
        break;
      default:
        break;
    }
  });

  sc.addEventListener("close", () => {
    setReady(false);
    status.textContent = "socket closed";
  });

  panel.querySelector("[data-job-form]").addEventListener("submit", (event) => {
    event.preventDefault();
    sc.sendJSON({ type: "job", n: Number(panel.querySelector("[data-job-n]").value) });
  });
  echo.addEventListener("click", () => sc.sendJSON({ type: "echo", data: { at: Date.now() } }));

  sc.connect();
})();
