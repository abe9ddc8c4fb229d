"""The entry points: the `agents-run` command and what only it uses."""
