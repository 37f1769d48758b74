"""raydoctor: get a developer's machine talking to a Ray cluster.

The package is importable as ``doctor``; the command is ``raydoctor``.
raydoctor never imports Ray in its own process: everything it learns about
Ray comes from HTTP, files, image tags, or small scripts run in other
interpreters.
"""

__version__ = "0.1.0"
