"""Several galleries in one deployment: the registry, the current gallery, its services."""
