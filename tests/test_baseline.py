"""Kneser–Ney n-gram models, the trigram baseline first: `python -m pytest tests/test_baseline.py -q`."""
import math
import random

import numpy as np
import pytest

from poetry_lstm.baseline import BOS, SCORED_POSITIONS, UNK, KneserNey, TrigramKN, estimate_discount, score, score_poem

# Toy corpus: sequences <s> <s> a b a b  and  <s> <s> a b b.
# Trigram counts: (<s>,<s>,a)=2  (<s>,a,b)=2  (a,b,a)=1  (b,a,b)=1  (a,b,b)=1
# Bigram continuation counts N(·vw), distinct left contexts:
#   (<s>,a)=1 {<s>}   (a,b)=2 {<s>,b}   (b,a)=1 {a}   (b,b)=1 {a}
# Unigram continuation counts N(·w): a=2 {<s>,b}  b=2 {a,b};  N(··)=4 bigram types, 2 word types.
# Vocabulary {a, b, <unk>}: |V| = 3.
TOY = ["abab", "abb"]


@pytest.fixture
def toy():
    return TrigramKN(discount=0.5).fit(TOY)


def test_unigram_level_by_hand(toy):
    # P1(w) = max(N(·w) - D, 0) / N(··) + D * types / N(··) * 1/|V|
    uniform_share = 0.5 * 2 / 4 * (1 / 3)               # = 1/12
    assert toy._unigram[toy.index["a"]] == pytest.approx((2 - 0.5) / 4 + uniform_share)   # 11/24
    assert toy._unigram[toy.unk_id] == pytest.approx(1 / 12)


def test_trigram_probabilities_by_hand(toy):
    p1_a = (2 - 0.5) / 4 + 0.5 * 2 / 4 / 3                     # 11/24
    p1_b = p1_a                                               # same continuation count
    # P(a | a b): trigram history (a,b) saw a once, b once: total 2, 2 types.
    p2_a_given_b = (1 - 0.5) / 2 + 0.5 * 2 / 2 * p1_a         # 23/48
    assert toy.prob("a", "a", "b") == pytest.approx((1 - 0.5) / 2 + 0.5 * 2 / 2 * p2_a_given_b)
    assert toy.prob("a", "a", "b") == pytest.approx(47 / 96)
    # P(b | <s> a): history (<s>,a) saw b twice, 1 type; bigram history a: N(·ab)=2, 1 type.
    p2_b_given_a = (2 - 0.5) / 2 + 0.5 * 1 / 2 * p1_b         # 83/96
    assert toy.prob("b", BOS, "a") == pytest.approx((2 - 0.5) / 2 + 0.5 * 1 / 2 * p2_b_given_a)
    assert toy.prob("b", BOS, "a") == pytest.approx(371 / 384)
    # Unseen trigram history (b,b): the bigram level answers alone.
    assert toy.prob("a", "b", "b") == pytest.approx(23 / 48)


def test_unknown_character_gets_its_uniform_share(toy):
    # P(<unk> | <s> <s>) = D*1/2 * P2(<unk>|<s>) = 1/4 * (D*1/1 * P1(<unk>)) = 1/4 * 1/2 * 1/12
    assert toy.prob("z", BOS, BOS) == pytest.approx(1 / 96)
    assert toy.prob("z", BOS, BOS) == toy.prob(UNK, BOS, BOS)
    assert toy.log_prob("z", BOS, BOS) == pytest.approx(math.log(1 / 96))


def test_discounts_estimated_from_count_of_counts():
    model = TrigramKN().fit(TOY)
    # trigram counts 2,2,1,1,1: n1=3, n2=2 -> 3/7; bigram continuations 1,2,1,1 -> 3/5;
    # unigram continuations 2,2: no n1, so the fallback 0.75.
    assert model.discounts == pytest.approx((0.75, 3 / 5, 3 / 7))
    assert estimate_discount([1, 1, 2, 3]) == pytest.approx(2 / 4)


@pytest.mark.parametrize("history", [(BOS, BOS), ("a", "b"), ("b", "a"), ("b", "b"), ("z", "q"), (BOS, "a")])
def test_distribution_sums_to_one_and_matches_prob(history):
    model = TrigramKN().fit(TOY + ["babba", "aab"])
    dist = model.distribution(*history)
    assert dist.sum() == pytest.approx(1.0)
    assert (dist > 0).all()
    for token, p in zip(model.tokens, dist):
        assert model.prob(token, *history) == pytest.approx(p)


def _pseudo_poems(n, seed=0):
    """Poems drawn from a small stock of lines, so a trigram model can learn them."""
    rng = random.Random(seed)
    chars = [chr(0x4E00 + i) for i in range(60)]
    stock = ["".join(rng.choice(chars) for _ in range(5)) for _ in range(40)]
    return [f"{rng.choice(stock)}，{rng.choice(stock)}。{rng.choice(stock)}，{rng.choice(stock)}。"
            for _ in range(n)]


def _shuffled(poem, rng):
    chars = [ch for ch in poem if ch not in "，。"]
    rng.shuffle(chars)
    return f"{''.join(chars[:5])}，{''.join(chars[5:10])}。{''.join(chars[10:15])}，{''.join(chars[15:])}。"


def test_training_text_scores_better_than_shuffled_text():
    poems = _pseudo_poems(300)
    model = TrigramKN().fit(poems)
    rng = random.Random(1)
    on_train = score(model, poems[:100])
    on_shuffled = score(model, [_shuffled(p, rng) for p in poems[:100]])
    assert on_train["perplexity"] < on_shuffled["perplexity"] / 3
    assert on_train["accuracy"] > on_shuffled["accuracy"]
    assert on_train["chars"] == 100 * 15 and on_train["poems"] == 100


def test_scored_positions_are_lines_two_to_four_without_punctuation():
    poem = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    assert len(SCORED_POSITIONS) == 15
    assert "".join(poem[i] for i in SCORED_POSITIONS) == "黄河入海流欲穷千里目更上一层楼"


def test_score_poem_by_hand_and_top1_is_the_argmax():
    poems = _pseudo_poems(50)
    model = TrigramKN().fit(poems)
    poem = poems[7]
    result = score_poem(model, poem)
    expected_log_prob = sum(model.log_prob(poem[i], poem[i - 2], poem[i - 1]) for i in SCORED_POSITIONS)
    expected_correct = sum(
        model.tokens[int(np.argmax([model.prob(t, poem[i - 2], poem[i - 1]) for t in model.tokens]))] == poem[i]
        for i in SCORED_POSITIONS)
    assert result.log_prob == pytest.approx(expected_log_prob)
    assert result.correct == expected_correct
    assert (result.chars, result.unknown) == (15, 0)


def test_unknown_characters_are_counted_and_mapped():
    poems = _pseudo_poems(50)
    model = TrigramKN().fit(poems)
    poem = poems[0]
    # Two unseen characters in scored positions, one in line 1 (history only, not counted);
    # the pseudo-poems use only U+4E00..U+4E3B.
    strange = "鹤" + poem[1:6] + "鸥" + poem[7:12] + "雁" + poem[13:]
    result = score(model, [strange])
    assert result["unknown"] == 2
    assert model.prob("鸥", "x", "y") == model.prob(UNK, "x", "y")


def test_vocab_maps_rare_training_characters_to_unknown():
    model = TrigramKN(discount=0.5).fit(["abcab", "abab"], vocab={"a", "b"})
    assert model.tokens == ["a", "b", UNK]
    # c was seen after (a,b) in training, as <unk>: it now gets real trigram mass.
    assert model.prob("c", "a", "b") > 0.25
    assert model.distribution("a", "b").sum() == pytest.approx(1.0)


def test_fitting_is_deterministic():
    poems = _pseudo_poems(200, seed=3)
    first, second = TrigramKN().fit(poems), TrigramKN().fit(list(reversed(poems)))
    assert first.discounts == second.discounts
    assert score(first, poems[:30]) == score(second, poems[:30])


def test_bad_input_is_refused():
    model = TrigramKN().fit(TOY)
    with pytest.raises(ValueError, match="24-character"):
        score_poem(model, "白日依山尽，")
    with pytest.raises(ValueError):
        TrigramKN().fit([])
    with pytest.raises(ValueError):
        TrigramKN(discount=1.5)


# ---- any order -------------------------------------------------------------------------------
def test_fourgram_probability_by_hand():
    # Order 4 pads with three <s>. 4-grams: (sssa)=2 (ssab)=2 (saba)=1 (abab)=1 (sabb)=1; their
    # suffixes give trigram continuations (ssa)=1 (sab)=1 (aba)=1 (bab)=1 (abb)=1, and below them the
    # same bigram and unigram continuations as the trigram model above.
    model = KneserNey(order=4, discount=0.5).fit(TOY)
    p2 = (1 - 0.5) / 2 + 0.5 * 2 / 2 * (11 / 24)   # P(a | b) = 23/48
    p3 = (1 - 0.5) / 2 + 0.5 * 2 / 2 * p2          # P(a | a b): history (a,b) has aba, abb
    p4 = (1 - 0.5) / 2 + 0.5 * 2 / 2 * p3          # P(a | <s> a b): history has saba, sabb
    assert model.prob("a", BOS, "a", "b") == pytest.approx(p4) == pytest.approx(95 / 192)
    assert model.discounts == (0.5,) * 4


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_every_order_gives_distributions_that_sum_to_one(order):
    poems = _pseudo_poems(80, seed=order)
    model = KneserNey(order=order).fit(poems)
    rng = random.Random(order)
    histories = [tuple(poem[i:i + order - 1]) for poem in poems[:5] for i in range(0, 24 - order, 7)]
    histories += [tuple(rng.choice("龘鱻" + poems[0]) for _ in range(order - 1)), (BOS,) * (order - 1)]
    for history in histories:
        dist = model.distribution(*history)
        assert dist.sum() == pytest.approx(1.0) and (dist > 0).all()
        assert model.tokens[int(np.argmax(dist))] == model.top1(*history)


def test_vectorised_scores_match_one_character_at_a_time():
    poems = _pseudo_poems(120, seed=9)
    model = KneserNey(order=4).fit(poems[:100])
    lines = [line for poem in poems[100:] for line in poem.replace("。", "，").split("，")[:4]]
    table = model.text_log_probs(lines)
    assert table.shape == (len(lines), 5)
    for line, row in zip(lines, table):
        history = [BOS] * 3 + list(line)
        assert list(row) == pytest.approx([model.log_prob(ch, *history[i:i + 3]) for i, ch in enumerate(line)])


def test_trigram_is_the_order_three_model():
    poems = _pseudo_poems(150, seed=2)
    general, trigram = KneserNey(order=3).fit(poems[:120]), TrigramKN().fit(poems[:120])
    assert score(general, poems[120:]) == score(trigram, poems[120:])
    assert trigram.order == 3 and trigram.discounts == general.discounts


def test_wrong_history_or_lengths_are_refused():
    model = KneserNey(order=4).fit(TOY)
    with pytest.raises(ValueError, match="needs 3 history tokens, not 2"):
        model.prob("a", "a", "b")
    with pytest.raises(ValueError, match="one length"):
        model.text_log_probs(["ab", "abc"])
    with pytest.raises(ValueError, match="order must be at least 1"):
        KneserNey(order=0)
    with pytest.raises(ValueError, match="too many"):
        KneserNey(order=6).fit([chr(0x4E00 + i) for i in range(3000)])
