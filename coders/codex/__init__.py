"""Codex: the adapter, its error classification and its rollout-file reader."""
