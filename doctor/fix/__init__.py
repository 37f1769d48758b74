"""``raydoctor fix``: plan, interpreter, venv, install, prove."""
