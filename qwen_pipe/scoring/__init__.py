"""Answer extraction (filters) and metrics, kept apart from the tasks that use them."""
