"""What people do to the queue: create, update, close, reopen, dependencies (`mutations`), and
beads' JSONL format (`beads`) for import and export (`transfer`)."""
