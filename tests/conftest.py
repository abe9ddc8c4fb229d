# pytester drives real pytest runs for the plugin's tests (tests/plugin); pytest_plugins is only
# honoured in a top-level conftest.
pytest_plugins = ["pytester"]
