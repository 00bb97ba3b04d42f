"""Settings: the project's name, API keys, members, webhooks and source credentials."""
