"""`make bench`: measure the cost of every prewarmed file (see bench/run.py)."""
