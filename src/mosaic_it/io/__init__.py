"""Files at the edges: reading every input format, writing every output format."""
