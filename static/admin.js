// Admin pages: live reindex progress and confirmations. No inline scripts (CSP-ready);
// the pages work without this file, the panel then shows the state as of the last load.
(function () {
  "use strict";

  var PHASES = {
    idle: "No reindex has run yet", queued: "Starting", loading: "Loading the model",
    encoding: "Encoding images", indexing: "Building the index", switching: "Switching",
    done: "Done", failed: "Failed", cancelled: "Cancelled"
  };

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  var panel = document.getElementById("reindex");
  if (!panel || !window.fetch) { return; }
  var url = panel.getAttribute("data-status-url");
  var wasActive = panel.getAttribute("data-active") === "true";

  function duration(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    var s = Math.round(seconds);
    if (s < 60) { return s + " s"; }
    var m = Math.floor(s / 60); s = s % 60;
    if (m < 60) { return m + " min " + (s < 10 ? "0" : "") + s + " s"; }
    var h = Math.floor(m / 60); m = m % 60;
    return h + " h " + (m < 10 ? "0" : "") + m + " min";
  }

  function field(name) { return panel.querySelector("[data-field='" + name + "']"); }
  function setText(name, text) { var el = field(name); if (el) { el.textContent = text; } }

  function render(job) {
    setText("phase-label", PHASES[job.phase] || job.phase);
    setText("kind", job.kind === "rollback" && job.phase !== "idle" ? "(rollback)" : "");
    setText("message", job.message || "");
    setText("done", job.done);
    setText("total", job.total);
    setText("rate", Number(job.rate || 0).toFixed(1));
    setText("eta", duration(job.eta_s));
    setText("duration", job.started ? duration(job.duration_s) : "–");
    setText("failed", job.failed);
    setText("old_collection", job.old_collection || "–");
    setText("new_collection", job.new_collection || "–");
    var bar = field("bar");
    if (bar) {
      bar.max = job.total || 1;
      bar.value = job.total ? job.done : (job.phase === "done" ? 1 : 0);
    }
    var list = field("failures");
    if (list) {
      list.textContent = "";
      (job.failures || []).forEach(function (reason) {
        var item = document.createElement("li");
        item.textContent = reason;
        list.appendChild(item);
      });
    }
    var error = field("error");
    if (error) { error.textContent = job.error || ""; error.hidden = !job.error; }
    document.querySelectorAll("[data-show]").forEach(function (el) {
      el.hidden = (el.getAttribute("data-show") === "active") !== Boolean(job.active);
    });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { throw new Error("logged out"); }
        return response.json();
      })
      .then(function (body) {
        var job = body.job;
        render(job);
        if (wasActive && !job.active) {
          // Finished: reload once so the index stats show the new collection.
          window.setTimeout(function () { window.location.reload(); }, 1500);
          return;
        }
        wasActive = job.active;
        window.setTimeout(poll, job.active ? 1000 : 5000);
      })
      .catch(function (err) {
        if (err && err.message === "logged out") {
          setText("message", "Your session ended: reload the page to log in again.");
          return;
        }
        window.setTimeout(poll, 5000);
      });
  }
  window.setTimeout(poll, wasActive ? 500 : 2000);
})();
