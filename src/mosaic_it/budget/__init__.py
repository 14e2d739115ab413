"""Token budgets: tokenizers, chat templates, exact counting and folding."""
