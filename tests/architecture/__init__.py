"""Tests of the architecture contracts in .importlinter."""
