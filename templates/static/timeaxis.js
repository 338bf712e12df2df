/* asgi_monitor charts' time axis, shared by the dashboard and the route view. uPlot's default
   labels are two rows, the second naming the date on the first tick and the time at each new
   minute: over a new app's first minutes (ticks seconds apart) the first tick's date ran into
   the next minute's time. One row, in the reader's local time, spaced for the widest label. */
(function () {
  "use strict";

  function labels(u, splits, axisIdx, space, incr) {
    var day = incr >= 86400;
    var options = day ? { month: "short", day: "numeric" }
                      : incr < 60 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
                                  : { hour: "2-digit", minute: "2-digit" };
    return splits.map(function (t) {
      var moment = new Date(t * 1000);
      return day ? moment.toLocaleDateString([], options)
                 : moment.toLocaleTimeString([], options);
    });
  }

  // The x axis of every chart over time: uPlot keeps ticks at least `space` px apart, which
  // the longest label ("10:13:40 PM") fits in with a gap.
  window.asgiMonitorTimeAxis = function () {
    return { values: labels, space: 90 };
  };
})();
