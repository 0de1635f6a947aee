// The "today" page: every few seconds, read each site's go / no-go from the JSON endpoint and update its row in
// place (its badge, reason and action); a new meeting or site needs a reload, which the page then offers.
(function () {
  "use strict";
  var root = document.getElementById("today");
  if (!root) { return; }
  var source = root.getAttribute("data-source");
  var EVERY_MS = 5000;

  function update(data) {
    (data.occurrences || []).forEach(function (o) {
      (o.sites || []).forEach(function (s) {
        var row = root.querySelector('table[data-occurrence="' + o.occurrence_id + '"] tr[data-site="' + s.code + '"]');
        if (!row) { return; }
        if (row.getAttribute("data-status") === s.status) { return; }
        row.setAttribute("data-status", s.status);
        var cells = row.getElementsByTagName("td");
        var badge = cells[1].querySelector(".badge");
        badge.className = "badge readiness-" + s.status;
        badge.textContent = s.status_label;
        cells[2].textContent = s.reason;
        cells[3].textContent = s.action;
      });
    });
  }

  function poll() {
    fetch(source, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { update(data); } })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { window.setTimeout(poll, EVERY_MS); });
  }
  window.setTimeout(poll, EVERY_MS);
}());
