"""Analytics snapshots and per-shop settings (filled in by the analytics issue)."""
