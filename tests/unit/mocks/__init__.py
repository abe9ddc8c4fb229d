"""Unit test doubles. Integration and end-to-end tests never import them (see .importlinter)."""
