"""Review rules, one module per area; importing a module registers its rules."""
