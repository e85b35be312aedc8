"""What several datasets share (no dataset of their own): the task interface and its default loaders
(`base.py`), loading tasks by name (`registry.py`), the requests a task makes (`requests.py`), and the
families' code (`multiple_choice.py`, `ai2_arc.py`, `code.py`)."""
