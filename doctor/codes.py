"""Finding codes that more than one module reads: the check that emits one and the plan (or command)
that keys on it import the same name, so a rename cannot leave one side behind.

A code is stable across releases (``--json`` users key on it too); the wording of a finding is not.
"""

from __future__ import annotations

# doctor.checks.basics::client_extras -> doctor.fix.plan (fix installs ray[client]'s extras)
CLIENT_EXTRAS_MISSING = "packages.client_extras.missing"
# doctor.checks.jobs -> doctor.fix.plan (jobs mode: the judged interpreter already submits jobs)
JOBS_CLIENT_OK = "jobs.client.ok"
# doctor.checks.packages::resolution -> doctor.fix.plan (no build uv already says will fail)
RESOLUTION_UNSATISFIABLE = "packages.resolution.unsatisfiable"
# doctor.checks.environment::judge_settings_trust (tests and scripts key on them)
SETTINGS_UNTRUSTED = "local.settings_trust.untrusted"
SETTINGS_REFUSED = "local.settings_trust.refused"
