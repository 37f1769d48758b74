"""Where a fact or a choice came from, as a type: decisions read this, never a display string.

The auth token goes only to a target the user named (``NAMED_BY_USER``): a flag, ``RAY_ADDRESS``,
or a settings file the user has trusted (``doctor.trust``; an untrusted file's ``address`` is never
applied at all). A compose file's published ports or a cluster file are the file's choice.
"""

from __future__ import annotations

from enum import Enum


class Origin(str, Enum):
    """Who chose a value. A ``str`` so that it serializes as its value in the report's JSON."""

    FLAG = "flag"  # the command line
    ENVIRONMENT = "environment"  # RAY_ADDRESS and the like
    SETTINGS = "settings file"  # a settings file the user trusts (doctor.trust)
    COMPOSE = "compose file"  # a compose file's services and published ports
    CLUSTER_FILE = "cluster file"  # a ray up YAML, KubeRay resource or Helm values
    DEFAULT = "default"  # raydoctor's own default (the shipped compose file)


# Places where the user names the target: an address from one of these may receive the auth token.
NAMED_BY_USER = frozenset({Origin.FLAG, Origin.ENVIRONMENT, Origin.SETTINGS})
