"""Fact sources that are not about one head or one interpreter: the cluster's nodes and the ``--deep`` probe.

Facts never import checks; checks only judge what these return (see ``doctor.context``).
"""
