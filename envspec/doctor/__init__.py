"""Beside install, doctor: probe this machine, recommend a target, and check what stands in the way."""
