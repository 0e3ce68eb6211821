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

  // The dashboard's live chart and tiles.
  var chart = document.getElementById("rates-chart");
  if (!chart || typeof uPlot === "undefined") return;
  var plot = null;
  var format = function (n) {
    if (n === null || n === undefined || isNaN(n)) return "–";
    return n >= 100 ? Math.round(n).toLocaleString() : n.toFixed(1);
  };
  var setText = function (id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  };
  var last = function (a) { return a.length ? a[a.length - 1] : null; };
  var draw = function (d) {
    setText("tile-accepted", format(last(d.accepted)));
    setText("tile-stored", format(last(d.stored)));
    setText("tile-errors", format(last(d.errors)));
    setText("tile-queue", d.queue_depth.toLocaleString());
    setText("tile-lag", d.lag_seconds === null ? "–" : d.lag_seconds.toFixed(1) + " s");
    if (d.t.length < 2) return;
    var empty = document.getElementById("chart-empty");
    if (empty) empty.remove();
    var data = [d.t, d.accepted, d.stored, d.errors];
    var width = chart.clientWidth || 600;
    if (!plot) {
      plot = new uPlot({
        width: width, height: 300,
        scales: { x: { time: true } },
        series: [
          {},
          { label: "accepted/s", stroke: "#1f4e79", width: 2 },
          { label: "stored/s", stroke: "#067647", width: 2 },
          { label: "errors/s", stroke: "#b42318", width: 2 }
        ],
        axes: [{}, { size: 60 }]
      }, data, chart);
      window.addEventListener("resize", function () { plot.setSize({ width: chart.clientWidth, height: 300 }); });
    } else {
      plot.setData(data);
    }
  };
  var refresh = function () {
    fetch(chart.dataset.source, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(draw)
      .catch(function () { /* the next tick retries */ });
  };
  refresh();
  setInterval(refresh, 5000);
})();
