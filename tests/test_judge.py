"""The judge 4-gram: `python -m pytest tests/test_judge.py -q`.

Fitted on lines built from a small stock of words, so it has something to learn; checked against
Kneser–Ney's own definition (distributions sum to 1), by hand, and on word salad.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from conftest import CHARS

from poetry_lstm.baseline import BOS, UNK
from poetry_lstm.judge import JUDGE_ORDER, fit_judge, judge_perplexity, training_lines

WORDS = [CHARS[i:i + 2] for i in range(0, 60, 2)]  # 30 two-character words
VERBS = CHARS[60:80]


def stock_lines(n: int, seed: int = 0) -> list[str]:
    """Five-character lines shaped word + verb + word, as many real lines are (明月 照 高楼)."""
    rng = random.Random(seed)
    return [rng.choice(WORDS) + rng.choice(VERBS) + rng.choice(WORDS) for _ in range(n)]


def as_poem(lines: list[str]) -> str:
    return f"{lines[0]}，{lines[1]}。{lines[2]}，{lines[3]}。"


@pytest.fixture(scope="module")
def judge():
    return fit_judge(stock_lines(3000))


def test_training_lines_take_the_train_split_only_and_keep_repeats():
    records = [
        {"split": "train", "lines": ["白日依山尽", "黄河入海流", "白日依山尽", "更上一层楼"]},
        {"split": "test", "lines": ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡"]},
        {"split": "valid", "lines": ["千山鸟飞绝", "万径人踪灭", "孤舟蓑笠翁", "独钓寒江雪"]},
        {"split": "train", "lines": ["春眠不觉晓", "处处闻啼鸟", "夜来风雨声", "花落知多少"]},
    ]
    lines = training_lines(records)
    assert lines == records[0]["lines"] + records[3]["lines"]
    assert fit_judge(lines).order == JUDGE_ORDER == 4


@pytest.mark.parametrize("history", [(BOS, BOS, BOS), (BOS, BOS, WORDS[0][0]), tuple(WORDS[3] + VERBS[2]),
                                     (VERBS[0], VERBS[1], VERBS[2]), ("龘", "鱻", "靐")])
def test_probabilities_sum_to_one_over_the_vocabulary(judge, history):
    dist = judge.distribution(*history)
    assert dist.sum() == pytest.approx(1.0) and (dist > 0).all()
    assert [judge.prob(tok, *history) for tok in judge.tokens[:10]] == pytest.approx(list(dist[:10]))


def test_each_line_is_scored_alone_from_the_start_symbol(judge):
    poems = [as_poem(stock_lines(4, seed=s)) for s in (1, 2, 3)]
    by_hand = []
    for p in poems:
        for line in p.replace("。", "，").split("，")[1:4]:
            history = [BOS] * 3 + list(line)
            by_hand += [judge.log_prob(ch, *history[i:i + 3]) for i, ch in enumerate(line)]
    result = judge_perplexity(judge, poems)
    assert result["chars"] == 45 and result["unknown"] == 0
    assert result["perplexity"] == pytest.approx(math.exp(-np.mean(by_hand)))
    # Line 1 is never scored: changing it changes nothing.
    other_first = [as_poem(["龘龘龘龘龘"] + p.replace("。", "，").split("，")[1:4]) for p in poems]
    assert judge_perplexity(judge, other_first)["perplexity"] == pytest.approx(result["perplexity"])


def test_word_salad_and_unknown_characters_score_worse(judge):
    fluent = [as_poem(stock_lines(4, seed=100 + s)) for s in range(50)]
    rng = random.Random(5)
    salad = [as_poem(["".join(rng.sample(line, 5)) for line in p.replace("。", "，").split("，")[:4]]) for p in fluent]
    assert judge_perplexity(judge, salad)["perplexity"] > 3 * judge_perplexity(judge, fluent)["perplexity"]
    strange = [p[:6] + "龘" + p[7:] for p in fluent[:5]]
    result = judge_perplexity(judge, strange)
    assert result["unknown"] == 5
    assert judge.prob("龘", BOS, BOS, BOS) == judge.prob(UNK, BOS, BOS, BOS) > 0


def test_bad_input_is_refused(judge):
    with pytest.raises(ValueError, match="needs training lines"):
        fit_judge([])
    with pytest.raises(ValueError, match="no five-character"):
        judge_perplexity(judge, ["白日依山尽。"])
    with pytest.raises(ValueError, match="3 history tokens"):
        judge.prob("山", BOS, BOS)
