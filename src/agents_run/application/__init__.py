"""Use cases and workers. They reach infrastructure only through ``get_infra()``."""
