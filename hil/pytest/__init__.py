"""The pytest plugins (entry points in pyproject.toml): the target fixtures, and the
JUnit/HTML/KTAP report.
"""
