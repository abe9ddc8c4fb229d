"""Fault tests on the real servers: ``agents-run`` worker and publisher processes killed,
servers restarted, connections cut, with every stream checked against the store afterwards.
Short forms run in ``make test``; ``AGENTS_RUN_LONG_FAULTS=1`` runs the long forms."""
