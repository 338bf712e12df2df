"""Where an alert's and a chart's input comes from.

Each component hands over a typed snapshot of its numbers (:mod:`.inputs`); the sampler the
composition root assembles (:func:`asgi_monitor.build.sampler_of`) reads them, from the
components in one process or from the merged worker files under several (:mod:`.merged`, the one
reader of metric families by name); a :class:`~.samples.Sampler` folds them into a
:class:`~.samples.Sample` of cumulative totals, and a :class:`~.samples.SampleBuffer` keeps a
window of samples for the alert rules, while :mod:`asgi_monitor.timeseries` keeps the points the
dashboard charts.

Nothing is imported here: the request store imports :mod:`.inputs`, and must stay light.
"""
