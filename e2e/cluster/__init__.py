"""Browser tests through nginx, against the cluster `make cluster` runs."""
