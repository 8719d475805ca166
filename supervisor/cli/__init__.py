"""The `fleet` command line: `entry` (the executable), `main` (the click group), one module per
command group, `views` (tables), `output` (JSON and error reporting, shared by every path)."""
