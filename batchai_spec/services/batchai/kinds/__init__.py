"""Batch AI's own kinds: workspaces and what they hold. Registered in batchai_spec/services/batchai/__init__.py."""
