"""The domain: run events and the run life cycle. No I/O, no infrastructure."""
