/* asgi_monitor dashboard: draws the history with uPlot and keeps it current by polling
   history.json (and the SLOs API for the SLO panel). Everything from the server is written
   with textContent, never as HTML. */
(function () {
  "use strict";
  // Server-rendered moments are UTC; the reader's local time is what every other time shows.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var moment = new Date(el.getAttribute("datetime"));
    if (!isNaN(moment.getTime())) { el.textContent = moment.toLocaleTimeString(); }
  });
  var root = document.getElementById("dashboard");
  if (!root || typeof uPlot === "undefined") { return; }
  // From the origin, never relative to the page: a page opened as http://user:pass@host/...
  // resolves relative URLs to ones with credentials, which fetch() refuses to request.
  var historyUrl = window.location.origin + root.getAttribute("data-history-url");
  var refreshMs = Math.max(1, parseFloat(root.getAttribute("data-refresh")) || 5) * 1000;
  // The time range shown (the retention unless the page was opened with ?range=).
  var retention = parseFloat(root.getAttribute("data-retention")) || 3600;
  var interval = root.getAttribute("data-interval") || "interval";  // "30 s", "1 h"
  var routeUrl = root.getAttribute("data-route-url");
  var statusEl = document.getElementById("chart-status");
  var columns = null;
  var charts = {};

  var SPECS = {
    requests: { series: [{ key: "request_rate", label: "req/s", stroke: "#2563eb" }] },
    errors: {
      series: [
        { key: "error_rate", label: "5xx/s", stroke: "#dc2626", scale: "rate" },
        { key: "error_ratio", label: "5xx %", stroke: "#f59e0b", scale: "%", factor: 100 }
      ],
      axes: [{ scale: "rate" }, { scale: "%", side: 1 }]
    },
    latency: {
      series: [
        { key: "p50_ms", label: "p50 ms", stroke: "#16a34a" },
        { key: "p95_ms", label: "p95 ms", stroke: "#f59e0b" },
        { key: "p99_ms", label: "p99 ms", stroke: "#dc2626" }
      ]
    },
    resources: {
      series: [
        { key: "cpu_percent", label: "CPU %", stroke: "#7c3aed" },
        { key: "memory_percent", label: "memory %", stroke: "#0891b2" },
        { key: "disk_percent", label: "disk %", stroke: "#64748b" }
      ],
      range: [0, 100]
    }
  };

  function chartWidth(el) {
    return Math.max(200, Math.floor(el.clientWidth - 14));
  }

  function dataFor(spec) {
    var out = [columns.time];
    spec.series.forEach(function (s) {
      var values = columns[s.key] || [];
      out.push(s.factor ? values.map(function (v) { return v === null ? null : v * s.factor; })
                        : values);
    });
    return out;
  }

  function makeChart(name, el) {
    var spec = SPECS[name];
    var scales = { x: { time: true } };
    var series = [{}];
    spec.series.forEach(function (s) {
      series.push({ label: s.label, stroke: s.stroke, width: 2, scale: s.scale || "y",
                    spanGaps: false });
      var key = s.scale || "y";
      scales[key] = spec.range ? { range: spec.range } : { auto: true };
    });
    var axes = [window.asgiMonitorTimeAxis()].concat((spec.axes || [{ scale: "y" }]).map(function (a) {
      return { scale: a.scale, side: a.side === 1 ? 1 : 3, grid: { show: a.side !== 1 } };
    }));
    var opts = { width: chartWidth(el), height: 190, scales: scales, series: series, axes: axes,
                 legend: { live: true }, cursor: { drag: { x: false, y: false } } };
    var fallback = el.querySelector(".chart-fallback");
    if (fallback) { fallback.remove(); }
    return new uPlot(opts, dataFor(spec), el);
  }

  // Milliseconds with the precision the duration buckets have (the template's ms macro).
  function latencyMs(value) {
    return value.toFixed(value < 1 ? 2 : value < 10 ? 1 : 0);
  }

  function format(key, value) {
    if (value === null || value === undefined) { return "–"; }
    if (key === "error_ratio") { return (value * 100).toFixed(2) + " %"; }
    if (key === "request_rate") { return value.toFixed(2); }
    if (key.slice(-3) === "_ms") { return latencyMs(value); }
    return value.toFixed(0);
  }

  function updateNumbers() {
    var n = columns.time.length;
    if (!n) { return; }
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var key = el.getAttribute("data-live");
      if (columns[key]) { el.textContent = format(key, columns[key][n - 1]); }
    });
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) { td.className = className; }
    row.appendChild(td);
  }

  function updateRoutes(routes) {
    var body = document.getElementById("routes-body");
    if (!body || !routes.length) { return; }
    body.replaceChildren();
    routes.forEach(function (r) {
      var row = document.createElement("tr");
      var td = document.createElement("td");
      td.className = "route";
      var link = document.createElement("a");
      link.className = "route";
      link.href = routeUrl + "?name=" + encodeURIComponent(r.route) + "&range=" + retention;
      link.textContent = r.route;
      td.appendChild(link);
      row.appendChild(td);
      cell(row, String(r.requests), "col-requests");
      cell(row, r.rate === null ? "–" : r.rate.toFixed(2));
      cell(row, r.error_ratio === null ? "–" : (r.error_ratio * 100).toFixed(2) + " %");
      cell(row, r.p95_ms === null ? "–" : latencyMs(r.p95_ms));
      body.appendChild(row);
    });
  }

  var STATUSES = ["healthy", "warning", "critical", "unknown"];

  function updateStatus(doc) {
    var badge = document.getElementById("overall-status");
    if (badge && doc.status) {
      var status = STATUSES.indexOf(doc.status.status) >= 0 ? doc.status.status : "unknown";
      badge.textContent = doc.status.status;
      badge.title = doc.status.reason;
      badge.className = "badge status-" + status;
    }
    var errors = document.getElementById("error-window");
    if (errors && doc.error_window) {
      errors.textContent = format("error_ratio", doc.error_window.error_ratio);
    }
  }

  function merge(doc) {
    var incoming = doc.points;
    if (columns === null) { columns = incoming; return; }
    doc.columns.forEach(function (key) {
      columns[key] = columns[key].concat(incoming[key] || []);
    });
    var horizon = columns.time.length ? columns.time[columns.time.length - 1] - retention : 0;
    var drop = 0;
    while (drop < columns.time.length && columns.time[drop] <= horizon) { drop += 1; }
    // As many points as the server keeps, whatever their (wall-clock) times say.
    var keep = Math.ceil(retention / (doc.interval_seconds || 1)) + 1;
    drop = Math.max(drop, columns.time.length - keep);
    if (drop) {
      doc.columns.forEach(function (key) { columns[key] = columns[key].slice(drop); });
    }
  }

  function collecting(el, text) {
    var note = el.querySelector(".chart-fallback");
    if (!note) {
      note = document.createElement("p");
      note.className = "chart-fallback";
      el.appendChild(note);
    }
    note.textContent = text;
  }

  function draw() {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var name = el.getAttribute("data-chart");
      if (!SPECS[name]) { return; }
      // One point draws a lone dot on a made-up time axis: say what is happening instead.
      if (columns.time.length < 2) {
        collecting(el, "Collecting: a chart needs two points; " + columns.time.length +
                   " so far, one every " + interval + ".");
        return;
      }
      if (!charts[name]) { charts[name] = makeChart(name, el); }
      else { charts[name].setData(dataFor(SPECS[name])); }
    });
  }

  // The server's count of points: asking for the ones after it misses none, even when the
  // wall clock (the points' times) steps back.
  var cursor = null;

  function poll() {
    var url = historyUrl + "?range=" + encodeURIComponent(retention);
    if (cursor !== null) {
      url += "&after=" + encodeURIComponent(cursor);
    }
    fetch(url, { credentials: "same-origin", cache: "no-store",
                 headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (doc) {
        // A smaller cursor: the server restarted and sent all its points; start over.
        if (cursor !== null && doc.cursor < cursor) { columns = null; }
        cursor = doc.cursor;
        merge(doc);
        draw();
        updateNumbers();
        updateRoutes(doc.routes || []);
        updateStatus(doc);
        if (statusEl) {
          statusEl.textContent = columns.time.length + " points, updated " +
            new Date().toLocaleTimeString();
        }
      })
      .catch(function (err) {
        if (statusEl) { statusEl.textContent = "update failed (" + err.message + "), retrying"; }
      })
      .finally(function () { window.setTimeout(poll, refreshMs); });
  }

  // The SLO panel: per SLO, the budget bar and a chart of the burn rate over each window of its
  // alerts. The server sends each chart's whole (short) series every time: no merging.
  var sloSection = document.getElementById("slos");
  var sloCharts = {};
  var WINDOW_STROKES = ["#dc2626", "#f59e0b", "#7c3aed", "#2563eb", "#16a34a", "#0891b2",
                        "#64748b"];

  function sloFigure(name) {
    var found = null;
    // Compared as text, never put into a selector.
    sloSection.querySelectorAll("[data-slo]").forEach(function (el) {
      if (el.getAttribute("data-slo") === name) { found = el; }
    });
    return found;
  }

  function updateSlo(slo) {
    var figure = sloFigure(slo.name);
    if (!figure) { return; }
    var left = slo.budget.remaining_percent;
    var bar = figure.querySelector("[data-budget-bar]");
    if (bar) { bar.value = left === null ? 100 : Math.max(0, Math.min(100, left)); }
    var text = figure.querySelector("[data-budget-value]");
    if (text) { text.textContent = left === null ? "–" : left.toFixed(1) + " %"; }
    var history = slo.history;
    var windows = Object.keys(history.burn_rates);
    var data = [history.time].concat(windows.map(function (w) { return history.burn_rates[w]; }));
    // The lowest factor that pages, as a dashed line: how close the burn is to waking someone.
    var pages = slo.alerts.filter(function (a) { return a.severity === "page"; })
      .map(function (a) { return a.factor; });
    var threshold = pages.length ? Math.min.apply(null, pages) : null;
    if (threshold !== null) {
      data.push(history.time.map(function () { return threshold; }));
    }
    var el = figure.querySelector("[data-slo-chart]");
    var status = figure.querySelector("[data-slo-status]");
    var stamp = history.time.length + " points, one every " + interval + ", updated " +
      new Date().toLocaleTimeString();
    if (history.time.length < 2) {
      if (sloCharts[slo.name]) { sloCharts[slo.name].destroy(); delete sloCharts[slo.name]; }
      var note = el.querySelector(".chart-fallback");
      if (!note) { note = document.createElement("p"); note.className = "chart-fallback"; el.appendChild(note); }
      note.textContent = "Collecting: the burn rate needs two points.";
      if (status) { status.textContent = stamp; }
      return;
    }
    // Windows longer than the data kept so far give the same values: their lines lie on top
    // of each other, so the legend and the caption say so (and wider lines below show).
    var same = coinciding(windows, history.burn_rates);
    var chart = sloCharts[slo.name];
    if (chart && chart.series.length !== data.length) { chart.destroy(); chart = null; }
    if (!chart) {
      var fallback = el.querySelector(".chart-fallback");
      if (fallback) { fallback.remove(); }
      var series = [{}].concat(windows.map(function (w, i) {
        // Drawn in order, the first widest: a later line on top of it leaves it visible.
        return { label: "burn rate " + w, stroke: WINDOW_STROKES[i % WINDOW_STROKES.length],
                 width: Math.max(1.5, 2 * (windows.length - i)), spanGaps: false };
      }));
      if (threshold !== null) {
        series.push({ label: "pages above", stroke: "#b42318", width: 1, dash: [6, 4],
                      points: { show: false } });
      }
      chart = new uPlot({ width: chartWidth(el), height: 170, series: series,
                          scales: { x: { time: true }, y: { auto: true } },
                          axes: [window.asgiMonitorTimeAxis(), { scale: "y" }],
                          legend: { live: true },
                          cursor: { drag: { x: false, y: false } } }, data, el);
      sloCharts[slo.name] = chart;
    } else {
      chart.setData(data);
    }
    if (status) {
      status.textContent = stamp + (same.length ? "; lines coincide: " + same.join(", ") : "");
    }
  }

  // Groups of windows whose burn rates are equal at every instant, as "5m = 30m = 1h".
  function coinciding(windows, rates) {
    var groups = [];
    var used = {};
    windows.forEach(function (w, i) {
      if (used[w]) { return; }
      var group = [w];
      windows.slice(i + 1).forEach(function (other) {
        var a = rates[w], b = rates[other];
        var equal = a.length === b.length && a.every(function (v, k) {
          return v === b[k] || (v !== null && b[k] !== null && Math.abs(v - b[k]) < 1e-9);
        });
        if (equal) { group.push(other); used[other] = true; }
      });
      if (group.length > 1) { groups.push(group.join(" = ")); }
    });
    return groups;
  }

  function pollSlos() {
    fetch(window.location.origin + sloSection.getAttribute("data-slos-url"),
          { credentials: "same-origin", cache: "no-store",
            headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (doc) { doc.slos.forEach(updateSlo); })
      .catch(function (err) {
        sloSection.querySelectorAll("[data-slo-status]").forEach(function (el) {
          el.textContent = "update failed (" + err.message + "), retrying";
        });
      })
      .finally(function () { window.setTimeout(pollSlos, refreshMs); });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      Object.keys(charts).forEach(function (name) {
        var el = document.getElementById("chart-" + name);
        charts[name].setSize({ width: chartWidth(el), height: 190 });
      });
      Object.keys(sloCharts).forEach(function (name) {
        var el = sloFigure(name).querySelector("[data-slo-chart]");
        sloCharts[name].setSize({ width: chartWidth(el), height: 170 });
      });
    }, 150);
  });

  poll();
  if (sloSection) { pollSlos(); }
}());
