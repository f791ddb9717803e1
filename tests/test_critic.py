"""The neural critic: it learns what ties lines 2–4 to line 1, scores held-out poems, and round-trips."""
from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import CHARS

from poetry_lstm.critic import (
    _auc,
    binomial_interval,
    critic_scores,
    load_critic,
    load_numpy_critic,
    save_critic,
    train_critic,
)
from poetry_lstm.errors import PoetryError

TOPICS = [CHARS[i::4] for i in range(4)]  # four disjoint sets of characters


def poems(n: int, stay: bool, seed: int) -> list[str]:
    """Line 1 from one topic; lines 2–4 from the same topic (stay) or from another one: what the critic must
    learn is how the lines relate, not which characters occur (every topic occurs in both kinds)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        first = rng.randrange(4)
        rest = first if stay else rng.choice([t for t in range(4) if t != first])
        line = lambda t: "".join(rng.choice(TOPICS[t]) for _ in range(5))  # noqa: E731
        out.append(f"{line(first)}，{line(rest)}。{line(rest)}，{line(rest)}。")
    return out


@pytest.fixture(scope="module")
def critic():
    # a relation between lines is slower to learn than which characters occur: a brisk learning rate
    return train_critic(poems(800, True, 1), poems(800, False, 2), seed=5, epochs=12, dim=24, units=24,
                        learning_rate=8e-3, patience=6)


@pytest.mark.slow
def test_the_critic_learns_whether_the_lines_follow_the_first(critic):
    scores = critic_scores(critic, poems(200, True, 3), poems(200, False, 4))
    assert scores["auc"] > 0.9 and scores["accuracy"] > 0.8, scores
    assert scores["ours_taken_real"] < 0.2 < 0.8 < scores["real_taken_real"]
    assert critic.made["valid_accuracy"] > 0.8


@pytest.mark.slow
def test_a_saved_critic_scores_alike(critic, tmp_path):
    save_critic(tmp_path / "c", critic)
    again = load_critic(tmp_path / "c")
    sample = poems(20, True, 9) + poems(20, False, 10)
    np.testing.assert_allclose(again.p_real(sample), critic.p_real(sample), atol=1e-6)
    assert again.made == critic.made and again.tokens == critic.tokens


@pytest.mark.slow
def test_the_numpy_critic_reads_as_keras_does(critic, tmp_path):
    save_critic(tmp_path / "c", critic)
    fast = load_numpy_critic(tmp_path / "c")
    unknown = "风雨𠀀𠀁𠀂，" * 2 + "山水花月风。" * 2  # characters the critic never saw
    sample = poems(20, True, 11) + poems(20, False, 12) + [unknown]
    p_real = 1 / (1 + np.exp(-fast.logit_real(sample)))
    np.testing.assert_allclose(p_real, critic.p_real(sample), atol=3e-3)  # float16 weights
    assert fast.made == critic.made and fast.tokens == critic.tokens


def test_a_missing_critic_names_what_to_run(tmp_path):
    for load in (load_critic, load_numpy_critic):
        with pytest.raises(PoetryError, match="bench/critic.py train") as err:
            load(tmp_path / "none")
        assert err.value.kind == "critic_missing"


def test_too_few_poems_are_refused():
    with pytest.raises(PoetryError, match="at least 10") as err:
        train_critic(poems(5, True, 1), poems(50, False, 2))
    assert err.value.kind == "critic_too_few"


def test_auc_is_the_share_of_real_above_ours_with_ties_half():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.random(50).round(1), rng.random(70).round(1) * 0.8  # many ties
    expected = roc_auc_score(np.r_[np.ones(50), np.zeros(70)], np.r_[pos, neg])
    assert _auc(pos, neg) == pytest.approx(expected)
    assert _auc(np.array([1.0, 2.0]), np.array([0.0])) == 1.0 and _auc(np.array([0.5]), np.array([0.5])) == 0.5


def test_wilson_interval_holds_the_share_and_narrows_with_more_readings():
    low, high = binomial_interval(5, 20)
    assert low < 0.25 < high
    low2, high2 = binomial_interval(50, 200)
    assert high2 - low2 < high - low and binomial_interval(0, 0) == (0.0, 1.0)


@pytest.fixture(scope="module")
def with_critic(critic, tiny_models, tmp_path_factory):
    """A copy of the tiny models with a ranking critic beside them."""
    import shutil

    root = tmp_path_factory.mktemp("ranked")
    shutil.copytree(tiny_models, root / "models")
    save_critic(root / "models" / "critic", critic)
    return root / "models"


@pytest.mark.slow
def test_the_critic_weighs_how_real_a_candidate_reads_into_the_choice(with_critic):
    from poetry_lstm import generate as G
    from poetry_lstm.loading import load_model

    trained = load_model(with_critic / "word2vec")
    assert trained.critic is None  # found, not loaded: a poem without `critic` does not pay for it
    off = G.complete_poem(trained, "山水风月花", n=1, seed=3).poems[0]
    on = G.complete_poem(trained, "山水风月花", n=1, seed=3, critic=1.0, candidates=16).poems[0]
    assert off.realness == 0.0 and on.realness != 0.0
    assert on.realness == pytest.approx(float(trained.ranker().logit_real([on.text])[0]), abs=1e-3)
    strong = G.complete_poem(trained, "山水风月花", n=1, seed=3, critic=5.0, candidates=16).poems[0]
    assert strong.realness >= on.realness - 1e-9  # more weight never picks a poem the critic finds less real
    assert not any(n.kind == "no_critic" for n in on.notes)


def test_the_critic_weight_without_a_critic_says_so(tiny_models):
    from poetry_lstm import generate as G
    from poetry_lstm.loading import load_model

    trained = load_model(tiny_models / "word2vec")
    if trained.critic_path is not None:
        pytest.skip("the shared tiny models have a ranking critic")
    poem = G.complete_poem(trained, "山水风月花", n=1, seed=0, critic=1.0).poems[0]
    note = next(n for n in poem.notes if n.kind == "no_critic")
    assert "bench/critic.py train" in note.fields["command"] and poem.realness == 0.0


REAL = ["白日依山尽，黄河入海流。欲穷千里目，更上一层楼。", "千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。",
        "移舟泊烟渚，日暮客愁新。野旷天低树，江清月近人。", "松下问童子，言师采药去。只在此山中，云深不知处。"]


def test_a_patched_poem_takes_lines_of_the_same_tones_and_ends_from_another():
    from poetry_lstm.critic import PATCHES, patched_poems
    from poetry_lstm.layout import FIVE
    from poetry_lstm.prosody import tone_of

    # donors: the real poems with lines 2–4 made over, character by character, into others of the same tones
    rng = random.Random(3)
    by_tone: dict[str, list[str]] = {}
    for ch in CHARS:
        by_tone.setdefault(tone_of(ch), []).append(ch)
    donors = []
    for poem in REAL * 3:
        lines = FIVE.lines_of(poem)
        made = [lines[0]] + ["".join(rng.choice(by_tone[tone_of(ch)]) for ch in line[:-1]) + line[-1]
                             for line in lines[1:]]
        donors.append("，".join(made[:2]) + "。" + "，".join(made[2:]) + "。")
    patched = patched_poems(REAL, seed=1, pool=donors)
    assert len(patched) == len(REAL)
    for real, fake in zip(REAL, patched):
        old, new = FIVE.lines_of(real), FIVE.lines_of(fake)
        changed = tuple(k for k in range(4) if old[k] != new[k])
        assert changed in PATCHES  # (a two-line patch whose donor shares one of the lines shows as one)
        assert changed[-1] >= 1 and new[0] == old[0] and fake[5::6] == real[5::6]  # line 1 and the marks stay
        for a, b in zip(old, new):
            assert [tone_of(ch) for ch in a] == [tone_of(ch) for ch in b] and a[-1] == b[-1]
    assert patched_poems(REAL, seed=1, pool=donors) == patched  # the seed decides
    assert patched_poems(REAL, seed=1) == []  # no two of the four share the tones and ends of a line
    assert patched_poems(REAL + ["短诗"], seed=1, pool=donors)[:4] == patched  # a text of another shape is skipped
