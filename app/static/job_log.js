// The job page's live log: while the job runs, ask every second for the events after the last one shown,
// append their lines, and reload the page once when the job has ended (for its counts and buttons).
(function () {
  "use strict";
  var log = document.getElementById("job-log");
  if (!log || log.dataset.finished === "true") { return; }
  var url = log.dataset.eventsUrl;
  var after = parseInt(log.dataset.after || "0", 10);
  var failures = 0;

  function append(event) {
    if (!event.stdout) { return; }
    var line = document.createElement("span");
    line.className = "line ev-" + event.type + (event.status ? " st-" + event.status : "");
    line.dataset.seq = String(event.seq);
    line.textContent = event.stdout + "\n";  // text, never HTML
    log.appendChild(line);
  }

  function showState(body) {
    var badge = document.querySelector("#job-state .job-state");
    if (badge && body.state_label) {
      badge.textContent = body.state_label;
      badge.dataset.state = body.state;
      badge.className = "status job-state state-" + body.state;
    }
    var waiting = document.getElementById("job-waiting");
    if (waiting && body.state !== "queued") { waiting.hidden = true; }
  }

  function poll() {
    fetch(url + "?after=" + after, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (body) {
        failures = 0;
        var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
        body.events.forEach(function (event) { append(event); after = Math.max(after, event.seq); });
        if (atBottom) { log.scrollTop = log.scrollHeight; }
        showState(body);
        if (body.finished && body.events.length === 0) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, body.events.length ? 200 : 1000);
      })
      .catch(function () {
        failures += 1;  // a restart or a network blip: back off, but keep following
        window.setTimeout(poll, Math.min(30000, 1000 * Math.pow(2, failures)));
      });
  }

  window.setTimeout(poll, 1000);
}());
