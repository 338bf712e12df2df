/* asgi_monitor route view: draws one route's charts with uPlot and keeps them current by
   polling route.json. The route name is attacker-influenced: everything from the server is
   written with textContent, never as HTML. */
(function () {
  "use strict";
  localTimes();
  var root = document.getElementById("route-view");
  if (!root || typeof uPlot === "undefined") { return; }
  // From the origin, never relative to the page (see dashboard.js).
  var url = window.location.origin + root.getAttribute("data-route-url");
  var refreshMs = Math.max(1, parseFloat(root.getAttribute("data-refresh")) || 5) * 1000;
  var charts = {};

  function localTimes() {
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (!isNaN(moment.getTime())) { el.textContent = moment.toLocaleTimeString(); }
    });
  }

  // The same precision rules as the templates' macros.
  function latencyMs(value) {
    return value === null || value === undefined ? "–"
      : value.toFixed(value < 1 ? 2 : value < 10 ? 1 : 0);
  }
  function bounded(bound) { return bound === "le" ? "≤ " : bound === "gt" ? "> " : ""; }
  function percent(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(2) + " %";
  }
  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : value.toFixed(digits);
  }

  function width(el) { return Math.max(200, Math.floor(el.clientWidth - 14)); }

  function series(specs) {
    return [{}].concat(specs.map(function (s) {
      return { label: s.label, stroke: s.stroke, width: 2, spanGaps: false };
    }));
  }

  function collecting(el, text) {
    if (charts[el.id]) { charts[el.id].destroy(); delete charts[el.id]; }
    var note = el.querySelector(".chart-fallback");
    if (!note) {
      note = document.createElement("p");
      note.className = "chart-fallback";
      el.appendChild(note);
    }
    note.textContent = text;
  }

  function draw(el, opts, data) {
    var note = el.querySelector(".chart-fallback");
    if (note) { note.remove(); }
    var chart = charts[el.id];
    if (chart && chart.series.length === data.length) { chart.setData(data); return; }
    if (chart) { chart.destroy(); }
    opts.width = width(el);
    opts.height = 190;
    opts.cursor = { drag: { x: false, y: false } };
    charts[el.id] = new uPlot(opts, data, el);
  }

  var TIME = [
    { id: "traffic", specs: [{ key: "request_rate", label: "req/s", stroke: "#2563eb" },
                            { key: "error_rate", label: "5xx/s", stroke: "#dc2626" }] },
    { id: "latency", specs: [{ key: "p50_ms", label: "p50 ms", stroke: "#16a34a" },
                            { key: "p95_ms", label: "p95 ms", stroke: "#f59e0b" },
                            { key: "p99_ms", label: "p99 ms", stroke: "#dc2626" }] }
  ];

  function render(doc) {
    var columns = doc.columns;
    TIME.forEach(function (chart) {
      var el = document.getElementById("route-chart-" + chart.id);
      if (columns.time.length < 2) {
        collecting(el, "Collecting: a chart needs two intervals; " + columns.time.length +
                   " so far, one every " + doc.interval_label + ".");
        return;
      }
      var data = [columns.time].concat(chart.specs.map(function (s) { return columns[s.key]; }));
      draw(el, { series: series(chart.specs), scales: { x: { time: true } },
                 axes: [window.asgiMonitorTimeAxis(), {}], legend: { live: true } }, data);
    });
    var el = document.getElementById("route-chart-distribution");
    // From the first bucket that counted requests to the last: the empty tails say nothing.
    var buckets = doc.range.distribution;
    var first = 0, last = buckets.length - 1;
    while (first <= last && !buckets[first].requests) { first += 1; }
    while (last >= first && !buckets[last].requests) { last -= 1; }
    buckets = buckets.slice(first, last + 1);
    if (!buckets.length) {
      collecting(el, "No requests of this route in the last " + doc.range_label + ".");
    } else {
      var labels = buckets.map(function (b) {
        return b.le === "+Inf" ? "more" : "≤ " + latencyMs(b.le * 1000);
      });
      var xs = buckets.map(function (_, i) { return i; });
      draw(el, {
        series: [{ value: function (u, i) { return i === null ? "–" : labels[i]; } },
                 { label: "requests", stroke: "#2563eb", fill: "rgba(37,99,235,.35)",
                   width: 1, paths: uPlot.paths.bars({ size: [0.8, 60] }), points: { show: false } }],
        scales: { x: { time: false, range: [-0.5, Math.max(0.5, xs.length - 0.5)] } },
        axes: [{ splits: function () { return xs; }, rotate: -45, size: 56,
                 values: function (u, splits) { return splits.map(function (i) { return labels[i]; }); } },
               {}],
        legend: { live: true }
      }, [xs, buckets.map(function (b) { return b.requests; })]);
    }
    var r = doc.range;
    var values = { requests: fixed(r.requests, 0), request_rate: fixed(r.request_rate, 2),
                   error_ratio: percent(r.error_ratio) };
    ["p50", "p95", "p99"].forEach(function (q) {
      values[q] = bounded(r.latency_bounds[q]) + latencyMs(r.latency_ms[q]);
    });
    document.querySelectorAll("[data-range]").forEach(function (node) {
      var key = node.getAttribute("data-range");
      if (key in values) { node.textContent = values[key]; }
    });
    var body = document.getElementById("route-statuses");
    if (body && r.statuses.length) {
      body.replaceChildren();
      r.statuses.forEach(function (s) {
        var row = document.createElement("tr");
        [String(s.status), fixed(s.requests, 0), percent(r.requests ? s.requests / r.requests : null)]
          .forEach(function (text) {
            var td = document.createElement("td");
            td.textContent = text;
            row.appendChild(td);
          });
        body.appendChild(row);
      });
    }
    var status = document.getElementById("route-status");
    if (status) {
      status.textContent = doc.known_points + " of " + doc.points + " intervals known, updated " +
        new Date().toLocaleTimeString();
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store",
                 headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(render)
      .catch(function (err) {
        var status = document.getElementById("route-status");
        if (status) { status.textContent = "update failed (" + err.message + "), retrying"; }
      })
      .finally(function () { window.setTimeout(poll, refreshMs); });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      Object.keys(charts).forEach(function (id) {
        charts[id].setSize({ width: width(document.getElementById(id)), height: 190 });
      });
    }, 150);
  });

  poll();
}());
