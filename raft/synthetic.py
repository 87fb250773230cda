"""Synthetic judge data whose gold score is learnable from the response text.

Each response mixes filler sentences with sentences that signal one quality level; the gold score
is that level, optionally with Gaussian noise (rounded and clipped). Used by tests, demos and
benchmarks, since our machines cannot download Feedback-Collection.
"""

from __future__ import annotations

import random
from typing import Any

TOPICS = [
    "how to water a cactus",
    "why the sky is blue",
    "how to boil an egg",
    "what a prime number is",
    "how bicycles stay upright",
    "how to write a cover letter",
    "why leaves change colour",
    "how a refrigerator works",
    "what inflation means",
    "how to start running safely",
    "how vaccines train the immune system",
    "what a binary search does",
    "how tides form",
    "how to store fresh bread",
    "why we need sleep",
    "how to plan a budget",
]

CRITERIA = "Does the response answer the question correctly, completely and helpfully?"
DESCRIPTIONS = {
    1: "The response is wrong or unrelated to the question.",
    2: "The response touches the question but is mostly wrong or unhelpful.",
    3: "The response is partly correct but misses important parts.",
    4: "The response is correct and helpful with minor gaps.",
    5: "The response is correct, complete and very helpful.",
}
SIGNALS = {
    1: ["This answer is wrong and unrelated.", "Nothing here is correct.", "The facts given are false."],
    2: ["Most of this is wrong.", "The answer is weak and mostly unhelpful.", "Only one point is barely right."],
    3: [
        "Part of this is right, part is missing.",
        "The answer is adequate but incomplete.",
        "Some key steps are skipped.",
    ],
    4: ["The answer is correct with a small gap.", "This is solid and helpful.", "Almost every step is covered well."],
    5: [
        "The answer is excellent and complete.",
        "Every step is correct and clear.",
        "This is fully correct and very helpful.",
    ],
}
FILLER = [
    "It is worth thinking about the context first.",
    "Many people ask about this.",
    "There are several ways to look at it.",
    "Here is what I can say about it.",
    "Let us go through it one step at a time.",
    "Details matter in a case like this.",
    "Consider the usual situation at home.",
    "This comes up often in daily life.",
]
FEEDBACK = {
    1: "The response does not answer the question and its claims are false.",
    2: "The response mentions the topic but is mostly wrong and gives little help.",
    3: "The response is partly correct but leaves out important parts.",
    4: "The response is correct and helpful, with a minor gap.",
    5: "The response is correct, complete and clearly explained.",
}


def generate_rows(
    n: int,
    seed: int = 0,
    noise: float = 0.0,
    filler: tuple[int, int] = (1, 3),
    signals: int = 2,
) -> list[dict[str, Any]]:
    """n Feedback-Collection-style rows on the 1..5 scale, balanced over true scores.

    `filler` is the (min, max) filler sentences between signals, to control length; `noise` the
    standard deviation of the Gaussian noise added to the gold score.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        true = i % 5 + 1
        topic = rng.choice(TOPICS)
        sentences = []
        for _ in range(signals):
            sentences += rng.sample(FILLER, k=min(len(FILLER), rng.randint(*filler)))
            sentences.append(rng.choice(SIGNALS[true]))
        gold = true if noise <= 0 else min(5, max(1, round(true + rng.gauss(0.0, noise))))
        feedback = FEEDBACK[true]
        rows.append(
            {
                "orig_instruction": f"Explain {topic}.",
                "orig_response": " ".join(sentences),
                "orig_reference_answer": f"A complete and correct explanation of {topic}. " + SIGNALS[5][0],
                "orig_criteria": CRITERIA,
                **{f"orig_score{k}_description": d for k, d in DESCRIPTIONS.items()},
                "orig_feedback": feedback,
                "orig_score": str(gold),
                "output": f"{feedback} [RESULT] {gold}",
            }
        )
    rng.shuffle(rows)
    return rows
