"""Where datasets come from: the embedded samples, a local mirror, or the hub."""
