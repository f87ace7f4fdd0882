"""Data converters: source layer, atomic writer, one module per data set, and the registry."""
