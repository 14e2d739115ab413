"""The method: rule pack, layouts, strategies, sample composition, sample sizes."""
