"""What the package hands to other tools: Grafana dashboards, Prometheus rules, Kubernetes
manifests, OTLP metrics, the build-info metric and the metric names they all query."""
