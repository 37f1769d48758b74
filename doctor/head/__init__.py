"""Where facts about the Ray head come from: dashboard, docker, image tag, compose file."""
