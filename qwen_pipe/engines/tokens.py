"""Token-level helpers shared by the engines that compute log-likelihoods themselves."""

from __future__ import annotations


def context_continuation_ids(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, split the way lm-evaluation-harness splits them.

    Trailing spaces of the context move to the continuation (BPE merges a space with the following
    word), the pair is encoded as one string, and the continuation is what follows the context's ids.
    """
    spaces = len(context) - len(context.rstrip(" "))
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    context_ids = tokenizer.encode(context, add_special_tokens=False) if context else []
    if whole[: len(context_ids)] != context_ids:  # the boundary merged across: encode apart
        whole = context_ids + tokenizer.encode(continuation, add_special_tokens=False)
    if not context_ids:  # the first continuation token needs something to be predicted from
        context_ids = [tokenizer.eos_token_id]
        whole = context_ids + whole
    return context_ids, whole[len(context_ids) :]


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` before the first stop string, as vLLM does; returns (text, stopped)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
