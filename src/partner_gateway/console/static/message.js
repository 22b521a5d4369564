// One message's page: poll its console JSON every 2 s until the status is final, and redraw the
// status and the timeline (text only: nothing from the store is parsed as HTML).
"use strict";
(function () {
  const section = document.getElementById("message");
  if (!section || section.dataset.final === "true") return;
  const url = section.dataset.pollUrl;
  const live = document.getElementById("live");

  function badge(status) {
    const span = document.createElement("span");
    span.className = "status status-" + status.toLowerCase();
    span.textContent = status;
    return span;
  }

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content == null ? "" : String(content);
    row.appendChild(td);
  }

  function draw(view) {
    const status = view.status;
    document.getElementById("delivery-status").replaceChildren(badge(status.deliveryStatus));
    document.getElementById("status-description").textContent = status.deliveryStatusDescription;
    document.getElementById("error-code").textContent = status.errorCode || "none";
    document.getElementById("updated-at").textContent = status.updatedAt;
    const rows = view.events.events.map(function (event) {
      const row = document.createElement("tr");
      cell(row, event.occurredAt);
      cell(row, event.deliveryStatus ? badge(event.deliveryStatus) : "");
      cell(row, event.description);
      cell(row, event.source);
      cell(row, event.rawState || "");
      cell(row, event.errorCode || "");
      return row;
    });
    document.getElementById("timeline").replaceChildren.apply(document.getElementById("timeline"), rows);
  }

  async function poll() {
    try {
      const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (answer.status === 401) { live.textContent = "Your session ended: reload to sign in."; return; }
      if (answer.ok) {
        const view = await answer.json();
        draw(view);
        if (view.final) { live.textContent = "This status is final."; section.dataset.final = "true"; return; }
      }
    } catch (error) {
      live.textContent = "Could not reach the gateway; trying again…";
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
