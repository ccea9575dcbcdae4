"""The thin HTTP edge: authenticate, validate, produce a command, wait for its result, read views."""
