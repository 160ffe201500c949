"""Platform backups: configuration, databases and files of an environment."""
