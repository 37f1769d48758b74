"""Facts about the local interpreter and the project's requirements."""
