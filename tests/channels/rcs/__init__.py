"""RCS provider tests (a package, so their module names do not clash with tests/api/test_auth.py and
other channels' test_provider.py under pytest's default import mode)."""
