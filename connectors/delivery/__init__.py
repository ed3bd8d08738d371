"""Ways out: signed webhook delivery of agency tasks."""
