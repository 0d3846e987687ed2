"""Record shapes on the shared core: flat records, households with their persons."""
