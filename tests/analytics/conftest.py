"""Analytics tests build small shops straight into PostgreSQL (see factories.py)."""
