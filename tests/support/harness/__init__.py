"""What starts and drives servers and processes in tests: rstq and restate-server processes,
an in-process rstq server, hypercorn subprocesses, pytest fixtures, the compat scenarios, the
chaos load and the example traffic."""
