"""One parser per format: shell command lines, `ray start` options, bounded YAML."""
