"""Issue 15.5: the deployment package has no import circle; each rule and error has one home."""

from __future__ import annotations

import subprocess
import sys

from edge_agent.deployment import errors, policy
from edge_agent.errors import SecurityError


def _modules_after(import_line: str) -> set[str]:
    code = f"import sys\n{import_line}\nprint('\\n'.join(m for m in sys.modules if m.startswith('edge_agent.deployment')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    return set(out.split())


def test_record_and_calibration_do_not_import_the_policy():
    """The record needs the provisional default, not the rules: importing it must not pull policy in."""
    assert "edge_agent.deployment.policy" not in _modules_after("import edge_agent.deployment.record")
    assert _modules_after("import edge_agent.deployment.calibration") == {"edge_agent.deployment", "edge_agent.deployment.calibration"}
    assert _modules_after("import edge_agent.deployment.errors") == {"edge_agent.deployment", "edge_agent.deployment.errors"}


def test_policy_imports_the_record_at_module_level():
    """No TYPE_CHECKING dodge left: the policy imports the record like any other module."""
    assert "edge_agent.deployment.record" in _modules_after("import edge_agent.deployment.policy")
    assert "TYPE_CHECKING" not in open(policy.__file__, encoding="utf-8").read()


def test_refusals_are_defined_once_and_are_security_errors():
    names = ["DeploymentRefused", "DeploymentExpired", "DeploymentNotStarted", "DeviceNotInDeployment", "ThresholdApprovalMissing", "CalibrationMismatch"]
    for name in names:
        cls = getattr(errors, name)
        assert cls.__module__ == "edge_agent.deployment.errors"
        assert issubclass(cls, SecurityError) and (name == "DeploymentRefused" or issubclass(cls, errors.DeploymentRefused))
        assert getattr(policy, name) is cls, "the policy raises the same classes, it does not define its own"
