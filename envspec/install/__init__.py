"""Stage 4, install: an environment from a target's explicit lockfile, every package hash-checked."""
