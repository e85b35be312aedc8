"""The judge prompts qwen-pipe reproduces, exactly as their authors wrote them.

FastChat llm_judge's single-answer grading prompts for MT-Bench (`fastchat/llm_judge/data/judge_prompts.jsonl`
at lm-sys/FastChat 0e6d3e4: single-v1, single-math-v1 and their multi-turn variants; the pairwise ones are
not used) and Arena-Hard-Auto v0.1's pairwise prompt (`config/judge_config.yaml` at lmarena/arena-hard-auto
3071ef9). tests/test_judge.py checks every field against the offline mirror's copies of those files. They
live in code, not in a data file, so the judge stage's code manifest covers them: edit one and the judge
stage reruns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system_prompt: str
    prompt_template: str  # str.format fields: FastChat's and Arena-Hard's own names
    output_format: str  # "[[rating]]" (a 1-10 rating) or "[[A>B]]" (a pairwise verdict label)

    def messages(self, **fields: str) -> list[dict[str, str]]:
        """The judge's conversation: the system prompt, then the filled template as the user turn (as
        FastChat's `conv.set_system_message` + `append_message` and Arena-Hard's messages build it)."""
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.prompt_template.format(**fields)},
        ]


SINGLE_V1 = JudgePrompt(
    name="single-v1",
    system_prompt="You are a helpful assistant.",
    prompt_template='[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".\n\n[Question]\n{question}\n\n[The Start of Assistant\'s Answer]\n{answer}\n[The End of Assistant\'s Answer]',
    output_format="[[rating]]",
)
SINGLE_MATH_V1 = JudgePrompt(
    name="single-math-v1",
    system_prompt="You are a helpful assistant.",
    prompt_template="[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider correctness and helpfulness. You will be given a reference answer and the assistant's answer. Begin your evaluation by comparing the assistant's answer with the reference answer. Identify and correct any mistakes. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
    output_format="[[rating]]",
)
SINGLE_V1_MULTI_TURN = JudgePrompt(
    name="single-v1-multi-turn",
    system_prompt='Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. You evaluation should focus on the assistant\'s answer to the second user question. Begin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".\n\n',
    prompt_template="<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n### Assistant A:\n{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n<|The End of Assistant A's Conversation with User|>",
    output_format="[[rating]]",
)
SINGLE_MATH_V1_MULTI_TURN = JudgePrompt(
    name="single-math-v1-multi-turn",
    system_prompt='Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question. Your evaluation should consider correctness and helpfulness. You will be given a reference answer and the assistant\'s answer. You evaluation should focus on the assistant\'s answer to the second question. Begin your evaluation by comparing the assistant\'s answer with the reference answer. Identify and correct any mistakes. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".\n\n',
    prompt_template="<|The Start of Reference Answer|>\n\n### User:\n{question_1}\n\n### Reference answer:\n{ref_answer_1}\n\n### User:\n{question_2}\n\n### Reference answer:\n{ref_answer_2}\n\n<|The End of Reference Answer|>\n\n\n<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n### Assistant A:\n{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n<|The End of Assistant A's Conversation with User|>",
    output_format="[[rating]]",
)
ARENA_HARD_V0_1 = JudgePrompt(
    name="arena-hard-v0.1",
    system_prompt="Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to evaluate which assistant's answer is better.\n\nBegin your evaluation by generating your own answer to the prompt. You must provide your answers before judging any answers.\n\nWhen evaluating the assistants' answers, compare both assistants' answers with your answer. You must identify and correct any mistakes or inaccurate information.\n\nThen consider if the assistant's answers are helpful, relevant, and concise. Helpful means the answer correctly responds to the prompt or follows the instructions. Note when user prompt has any ambiguity or more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information from the user than providing an answer based on assumptions. Relevant means all parts of the response closely connect or are appropriate to what is being asked. Concise means the response is clear and not verbose or excessive.\n\nThen consider the creativity and novelty of the assistant's answers when needed. Finally, identify any missing important information in the assistants' answers that would be beneficial to include when responding to the user prompt.\n\nAfter providing your explanation, you must output only one of the following choices as your final verdict with a label:\n\n1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A is slightly better: [[A>B]]\n3. Tie, relatively the same: [[A=B]]\n4. Assistant B is slightly better: [[B>A]]\n5. Assistant B is significantly better: [[B>>A]]\n\nExample output: \"My final verdict is tie: [[A=B]]\".",
    prompt_template="<|User Prompt|>\n{question_1}\n\n<|The Start of Assistant A's Answer|>\n{answer_1}\n<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_2}\n<|The End of Assistant B's Answer|>",
    output_format="[[A>B]]",
)

MT_BENCH_PROMPTS = {
    p.name: p for p in (SINGLE_V1, SINGLE_MATH_V1, SINGLE_V1_MULTI_TURN, SINGLE_MATH_V1_MULTI_TURN)
}
