"""The apps make bench compares Nexus with (bench/http_throughput.py)."""
