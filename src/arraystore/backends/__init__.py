"""Built-in backends, one module each; imported lazily through :mod:`arraystore.registry`."""
