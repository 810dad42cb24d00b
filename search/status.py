"""How a finished job ends, as a process exit code (import-light: the device agent's CLI
shares it without loading the search package)."""

#: succeeded 0; exhausted 3 (the agent ran out of new architectures before the budget: neither
#: a success nor a failure); anything else (failed, cancelled) 1
EXIT_CODES = {"succeeded": 0, "exhausted": 3}
