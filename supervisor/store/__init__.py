"""The store: a bare git repository whose `main` ref is the truth, and the SQLite cache over it.

`store` (snapshots, mutations, the compare-and-swap), `git` (plumbing and the ref lock), `trees`
(commit trees built in-process), `cache` (derived, keyed by commit), `history` (the audit trail).
"""
