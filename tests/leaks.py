"""For tests that leave work in their infra on purpose (what they check happens before it ends)."""

import pytest

leaves_work_on_purpose = pytest.mark.filterwarnings("ignore::pytest_agents_run.InfraLeakWarning")
