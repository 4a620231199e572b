// Admin "Sources" page: live counters and sync progress. No inline scripts (CSP-ready);
// without this file the page shows the state as of its last load.
(function () {
  "use strict";
  var panel = document.getElementById("sources");
  if (!panel || !window.fetch) { return; }
  var url = panel.getAttribute("data-status-url");

  function set(row, name, text) {
    var el = row.querySelector("[data-field='" + name + "']");
    if (el) { el.textContent = text; }
  }

  function render(source) {
    var row = panel.querySelector("tr[data-source='" + source.id + "']");
    if (!row) { return; }
    set(row, "seen", source.seen);
    set(row, "indexed", source.indexed);
    set(row, "failed", source.failed);
    set(row, "phase", source.phase);
    set(row, "progress", source.active ? source.done + " objects" : "");
    set(row, "message", source.message || "");
    if (source.last_sync) { set(row, "last_sync", new Date(source.last_sync * 1000).toISOString().slice(0, 16).replace("T", " ")); }
    var button = row.querySelector("[data-field='button']");
    if (button) { button.disabled = source.active; }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { throw new Error("logged out"); }
        return response.json();
      })
      .then(function (body) {
        var active = false;
        body.sources.forEach(function (s) { render(s); active = active || s.active; });
        window.setTimeout(poll, active ? 1000 : 5000);
      })
      .catch(function (err) {
        if (err && err.message !== "logged out") { window.setTimeout(poll, 5000); }
      });
  }
  window.setTimeout(poll, 1000);
})();
