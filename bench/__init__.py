"""The delivery and fault-tolerance benchmark: `python -m bench` (see bench/README.md)."""
