// Live queue: server-sent events replace the rows (newest first); a counter shows how long each
// alert has waited for a decision. Rows are built with textContent only (no HTML from data).
"use strict";
(function () {
  const body = document.getElementById("queue-rows");
  const empty = document.getElementById("queue-empty");
  const live = document.getElementById("live");
  const firstSeen = (window.queueFirstSeen = window.queueFirstSeen || {});
  body.querySelectorAll("tr[data-event]").forEach((tr) => { firstSeen[tr.dataset.event] = firstSeen[tr.dataset.event] || Date.now(); });

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function render(rows) {
    const fresh = document.createDocumentFragment();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.event = r.event_id;
      tr.dataset.received = r.received_at;
      if (!(r.event_id in firstSeen)) { firstSeen[r.event_id] = Date.now(); tr.className = "new"; }
      cell(tr, r.device_id); cell(tr, r.deployment_id); cell(tr, r.captured_at); cell(tr, r.score.toFixed(3)); cell(tr, r.category);
      cell(tr, "", "age");
      const td = cell(tr, "");
      const a = document.createElement("a");
      a.href = "/alerts/" + encodeURIComponent(r.event_id);
      a.textContent = "Review";
      td.appendChild(a);
      if (r.hold_reason) { const s = document.createElement("span"); s.className = "hold"; s.textContent = " hold"; td.appendChild(s); }
      fresh.appendChild(tr);
    }
    body.replaceChildren(fresh);
    empty.hidden = rows.length > 0;
    tick();
  }

  function tick() {
    const now = Date.now();
    body.querySelectorAll("tr[data-received]").forEach((tr) => {
      const s = Math.max(0, Math.floor((now - Date.parse(tr.dataset.received)) / 1000));
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
      tr.querySelector(".age").textContent = (h ? h + "h " : "") + String(m).padStart(2, "0") + "m " + String(sec).padStart(2, "0") + "s";
    });
  }

  const source = new EventSource("/queue/events");
  source.addEventListener("queue", (e) => { live.textContent = "live"; render(JSON.parse(e.data).rows); });
  source.addEventListener("expired", () => { source.close(); window.location = "/login"; });
  source.onerror = () => { live.textContent = "reconnecting…"; };
  setInterval(tick, 1000);
  tick();
})();
