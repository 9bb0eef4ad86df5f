"""Helpers the tests share: test data locations, generated and damaged files, small models, child processes
and window drivers. Fixtures stay in the conftest.py files, which build them from these."""
