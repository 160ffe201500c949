"""Recovery readiness read from repositories, drill records and the last review."""
