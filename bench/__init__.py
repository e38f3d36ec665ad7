"""Benchmarks (`make bench`) and the soak (`make soak`): real servers under load."""
