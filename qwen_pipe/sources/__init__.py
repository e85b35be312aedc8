"""Readers of the places data comes from: the hub (`hub.py`), a local mirror folder (`mirror.py`) and the
data shipped inside installed packages (`embedded.py`). Tasks build their loaders on these; this layer
knows nothing of tasks (the fetch stage, `qwen_pipe/fetch.py`, joins the two)."""
