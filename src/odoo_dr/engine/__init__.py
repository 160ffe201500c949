"""Backup, restore and drill: moving data between servers and the repository."""
