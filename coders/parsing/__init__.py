"""What several adapters share to read an agent's output: JSON lines and the `<plan>` block."""
