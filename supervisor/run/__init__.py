"""Running agents: the supervisor's tick and its parts (dispatch, launch, ending, adoption),
processes and worktrees, the daemon around the loop, and the controls a person uses on it."""
