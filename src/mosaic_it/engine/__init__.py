"""The engine: grouping records into samples, the mosaicker, its stores and workers."""
