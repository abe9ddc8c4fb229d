"""Adapters: implementations of the ports. Only ``agents_run.config`` imports the networked ones."""
