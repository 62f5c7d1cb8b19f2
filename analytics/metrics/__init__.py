"""The figures of docs/METRICS.md: parameters, set-based SQL, and the report document."""
