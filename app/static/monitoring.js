// The operators' board, live: every few seconds ask board.json for the rows as the server renders them and
// swap in only those that changed, in the server's order; update the counts and the meetings at risk. The
// page itself is never reloaded, so a filter being chosen or a row being read is not disturbed.
(function () {
  "use strict";
  var table = document.getElementById("board");
  if (!table) { return; }
  var rows = document.getElementById("board-rows");
  var url = table.dataset.url;
  var interval = parseInt(table.dataset.interval || "5000", 10);
  var shown = {};  // site code -> the HTML of its row as last received
  var failures = 0;
  var clock = new Intl.DateTimeFormat(document.documentElement.lang || "vi",
    {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZone: table.dataset.timezone});

  function toRow(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    return holder.content.firstElementChild;
  }

  function patchRows(received) {
    var present = {};
    Array.prototype.forEach.call(rows.querySelectorAll("tr[data-site]"), function (tr) {
      present[tr.dataset.site] = tr;
    });
    var ordered = received.map(function (row) {
      var tr = present[row.code];
      if (!tr || shown[row.code] !== row.html) {
        var fresh = toRow(row.html);
        if (tr) { rows.replaceChild(fresh, tr); }
        tr = fresh;
      }
      shown[row.code] = row.html;
      delete present[row.code];
      return tr;
    });
    Object.keys(present).forEach(function (code) {  // no longer in the filter's selection
      present[code].remove();
      delete shown[code];
    });
    ordered.forEach(function (tr, i) {
      if (rows.children[i] !== tr) { rows.insertBefore(tr, rows.children[i] || null); }
    });
    document.getElementById("board-empty").hidden = received.length > 0;
  }

  function apply(body) {
    patchRows(body.rows);
    Object.keys(body.summary).forEach(function (state) {
      var count = document.querySelector('[data-count="' + state + '"]');
      if (count) { count.textContent = String(body.summary[state]); }
    });
    var incidents = document.querySelector('[data-count="incidents"]');
    if (incidents) { incidents.textContent = String(body.open_incidents); }
    var panel = document.getElementById("at-risk-panel");
    if (panel && panel.dataset.html !== body.at_risk_html) {
      panel.innerHTML = body.at_risk_html;
      panel.dataset.html = body.at_risk_html;
    }
    // The answer is the same between two probe steps (and then comes from the browser's cache after a 304):
    // the time shown is when the board last heard from the server.
    document.getElementById("board-updated").textContent = clock.format(new Date());
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (body) {
        failures = 0;
        document.getElementById("board-offline").hidden = true;
        apply(body);
        window.setTimeout(poll, interval);
      })
      .catch(function () {
        failures += 1;  // a restart or a network blip: say so, back off, keep trying
        document.getElementById("board-offline").hidden = false;
        window.setTimeout(poll, Math.min(60000, interval * Math.pow(2, failures)));
      });
  }

  window.setTimeout(poll, interval);
}());
