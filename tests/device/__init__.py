"""Checks run by hand on a machine with a GPU (``check.py``); pytest never collects them (no test_ files)."""
