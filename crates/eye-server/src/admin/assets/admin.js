// The Eye admin UI: the few things HTML cannot do alone. No inline scripts (the pages'
// Content-Security-Policy forbids them); everything is wired from data- attributes.
(function () {
  "use strict";

  // Rows open their event, error or session.
  document.querySelectorAll("tr[data-href]").forEach(function (row) {
    row.addEventListener("click", function (e) {
      if (e.target.closest("a, button, input, textarea, select, form")) return;
      window.location.href = row.dataset.href;
    });
  });

  // Copy buttons (the new token).
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.querySelector(button.dataset.copy);
      if (!field) return;
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { field.select(); });
      } else {
        field.select();
        try { document.execCommand("copy"); done(); } catch (_) { /* selected: copy by hand */ }
      }
    });
  });

  // Destructive forms ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  });

  // The dashboard: counts from the store over the chosen range, queue and lag live.
  var chart = document.getElementById("rates-chart");
  if (!chart || typeof uPlot === "undefined") return;
  var plot = null;
  var range = "1h";
  var titles = {
    "1h": "Events per minute, last hour",
    "24h": "Events per hour, last 24 hours",
    "7d": "Events per hour, last 7 days",
    "30d": "Events per day, last 30 days"
  };
  var setText = function (id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  };
  var cell = function (row, text, numeric) {
    var td = document.createElement("td");
    if (numeric) td.className = "num";
    td.textContent = text;
    row.appendChild(td);
  };
  var draw = function (d) {
    setText("tile-ingested", d.totals.ingested.toLocaleString());
    setText("tile-stored", d.totals.stored.toLocaleString());
    setText("tile-refused", d.totals.refused.toLocaleString());
    setText("tile-queue", d.queue_depth.toLocaleString());
    setText("tile-lag", d.lag_seconds === null ? "–" : d.lag_seconds.toFixed(1) + " s");
    setText("chart-title", titles[d.range] || "");
    var apps = document.getElementById("by-app");
    if (apps) {
      apps.textContent = "";
      d.by_app.forEach(function (a) {
        var row = document.createElement("tr");
        cell(row, a.app, false);
        cell(row, a.stored.toLocaleString(), true);
        cell(row, a.refused.toLocaleString(), true);
        apps.appendChild(row);
      });
    }
    var data = [d.t, d.ingested, d.stored, d.refused];
    var width = chart.clientWidth || 600;
    if (plot && plot.data[0].length !== d.t.length) {
      plot.destroy();
      plot = null;
    }
    if (!plot) {
      plot = new uPlot({
        width: width, height: 300,
        scales: { x: { time: true } },
        cursor: { drag: { x: true, y: false } },
        series: [
          {},
          { label: "ingested", stroke: "#1f4e79", width: 2 },
          { label: "stored", stroke: "#067647", width: 2 },
          { label: "refused", stroke: "#b42318", width: 2 }
        ],
        axes: [{}, { size: 60 }]
      }, data, chart);
    } else {
      plot.setData(data, false);
    }
  };
  window.addEventListener("resize", function () {
    if (plot) plot.setSize({ width: chart.clientWidth, height: 300 });
  });
  var refresh = function () {
    fetch(chart.dataset.source + "?range=" + encodeURIComponent(range),
      { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(draw)
      .catch(function () { /* the next tick retries */ });
  };
  document.querySelectorAll("[data-range]").forEach(function (button) {
    button.addEventListener("click", function () {
      range = button.dataset.range;
      document.querySelectorAll("[data-range]").forEach(function (b) {
        b.setAttribute("aria-pressed", b === button ? "true" : "false");
      });
      refresh();
    });
  });
  refresh();
  setInterval(refresh, 10000);
})();
