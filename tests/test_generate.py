"""Decoding on the tiny real models and on stand-in steppers: `python -m pytest tests/test_generate.py -q`.

A `TableStepper` replaces the LSTM where a test needs the model to want something specific
(one 仄 character everywhere, punctuation, a copy of the first line): the constraints must win.
"""
import dataclasses
import json
import shutil
import time
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from poetry_lstm import decoder as D
from poetry_lstm import generate as G
from poetry_lstm import prosody as P
from poetry_lstm.clean import VARIANT_FORMS
from poetry_lstm.cli import cli
from poetry_lstm.config import DecodeSettings
from poetry_lstm.errors import InputError, PoetryError
from poetry_lstm.loading import TrainedModel, load_model
from poetry_lstm.metrics import LineHashes
from poetry_lstm.modeldir import SPECIALS, Vocab
from poetry_lstm.tables import build_tables

FIT = ["床前明月光", "白日依山尽", "春眠不觉晓", "千山鸟飞绝"]  # each fits a form (asserted below)
ALL_OFF = dict(tones=False, rhyme=False, novelty=False)


class TableStepper:
    """Stand-in for LstmStepper: the next token's log-probabilities depend on the previous token only."""

    def __init__(self, table: np.ndarray):
        self.table = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
        self.embedding = np.eye(len(table), dtype=np.float32)  # each character similar only to itself

    def initial_state(self, batch):
        return [(np.zeros((batch, 1)), np.zeros((batch, 1)))]

    def step(self, ids, state, logits=True):
        return (self.table[np.asarray(ids)] if logits else None), state


def prefer(vocab: Vocab, wants: dict) -> TableStepper:
    """Every token unlikely; `wants` maps a character (or (previous, next)) to a strong preference."""
    table = np.full((len(vocab), len(vocab)), -10.0)
    for key, score in wants.items():
        if isinstance(key, tuple):
            table[vocab.id(key[0]), vocab.id(key[1])] = score
        else:
            table[:, vocab.id(key)] = score
    return TableStepper(table)


def fake_model(tmp_path, chars: str, wants: dict | None = None, **vocab_fields) -> TrainedModel:
    """A model over exactly these characters (plus ，。) that wants nothing in particular unless told;
    `vocab_fields` are the vocabulary's counts, doubles and doubles_at."""
    vocab = Vocab(SPECIALS + ("，", "。") + tuple(chars), **vocab_fields)
    return TrainedModel(tmp_path, vocab, {"model_args": {"mode": "fake"}}, prefer(vocab, wants or {}),
                        build_tables(vocab), np.zeros(len(vocab), np.float32), known_lines=set())


def settings(**changes) -> DecodeSettings:
    return dataclasses.replace(DecodeSettings.defaults(), **changes)


def assert_shape(poem: D.Poem, first: str | None = None):
    assert P.check_form(poem.text) and len(poem.text) == 24
    assert [poem.text[i] for i in (5, 11, 17, 23)] == list("，。，。")
    assert len(poem.lines) == 4 and all(len(ln) == 5 for ln in poem.lines)
    if first:
        assert poem.lines[0] == first


def assert_regulated(poem: D.Poem, first: str | None = None):
    """Tones of one form, rhyme on a 平声 group with two different characters, 仄 at line 3's end."""
    assert_shape(poem, first)
    assert P.check_tone(poem.text) and P.check_rhyme(poem.text), poem
    l2, l3, l4 = poem.lines[1][-1], poem.lines[2][-1], poem.lines[3][-1]
    assert l2 != l4 and P.rhyme_groups(l2) & P.rhyme_groups(l4) and P.ZE in P.reading(l3)[0]
    if first:
        assert poem.form in P.forms_for_first_line(first)
        assert all(P.line_fits(ln, t) for ln, t in zip(poem.lines, P.FORMS[poem.form]))
    assert not poem.warnings and poem.checks["tone"] and poem.checks["rhyme"]


@pytest.fixture(scope="module")
def models(tiny_models):
    return {mode: load_model(tiny_models / mode, keras=True) for mode in ("word2vec", "onehot")}


@pytest.fixture(scope="module")
def w2v(models):
    return models["word2vec"]


# --- sampling on a hand-made distribution --------------------------------------------------------

def test_sample_next_on_a_hand_made_distribution():
    p = np.array([0.05, 0.4, 0.3, 0.2, 0.05])
    logp, everything = np.log(p), np.ones(5, bool)
    rng = np.random.default_rng(0)
    draw = lambda n=2000, allowed=everything, **kw: Counter(D.sample_next(logp, allowed, rng, **kw) for _ in range(n))
    assert draw(top_k=1) == {1: 2000}
    assert draw(top_p=0.01) == {1: 2000}
    assert draw(temperature=1e-4) == {1: 2000}
    assert set(draw(top_k=2)) == {1, 2}
    assert set(draw(top_p=0.65)) == {1, 2}  # 0.4 < 0.65 ≤ 0.7: the nucleus is the two likeliest
    counts = draw(20000)  # plain sampling follows the distribution
    assert max(abs(counts[i] / 20000 - p[i]) for i in range(5)) < 0.015
    no_best = np.array([True, False, True, True, False])
    assert draw(allowed=no_best, top_k=1) == {2: 2000}
    counts = draw(20000, allowed=no_best)  # renormalised over what is allowed: 0.05, 0.3, 0.2 → /0.55
    assert set(counts) == {0, 2, 3} and abs(counts[2] / 20000 - 0.3 / 0.55) < 0.015
    assert set(draw(allowed=no_best, temperature=5.0)) == {0, 2, 3}  # hot, still never a disallowed id
    same = [D.sample_next(logp, everything, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(same)) == 1
    with pytest.raises(ValueError):
        D.sample_next(logp, np.zeros(5, bool), rng)


# --- form, tones, rhyme on the tiny real models --------------------------------------------------

@pytest.mark.parametrize("beam", [1, 8])
@pytest.mark.parametrize("mode", ["word2vec", "onehot"])
def test_constrained_poems_keep_form_tones_and_rhyme(models, mode, beam):
    for line in FIT:
        assert P.forms_for_first_line(line)
        result = G.complete_poem(models[mode], line, n=3, beam=beam, seed=1)
        assert result.first_line == line and len(result.poems) == 3
        for poem in result.poems:
            assert_regulated(poem, line)


def test_unconstrained_poems_keep_form_only(w2v):
    poems = [p for s in range(4) for p in G.complete_poem(w2v, "床前明月光", n=3, seed=s, **ALL_OFF).poems]
    for poem in poems:
        assert_shape(poem, "床前明月光")
        assert poem.form is None and poem.checks["copied"] is None
    # The tiny model is near uniform: unconstrained, it rarely lands on all the rules by chance.
    assert not all(p.checks["tone"] and p.checks["rhyme"] for p in poems)


def test_form_is_built_even_when_the_model_wants_punctuation(w2v):
    model = dataclasses.replace(w2v, stepper=prefer(w2v.vocab, {"，": 10.0, "<unk>": 9.0, "。": 9.0}))
    for beam in (1, 4):
        for poem in G.complete_poem(model, "床前明月光", n=2, beam=beam, **ALL_OFF).poems:
            assert_shape(poem, "床前明月光")


def test_constraints_win_over_a_model_that_wants_one_ze_character(w2v):
    assert P.reading("雪") == (frozenset({P.ZE}), frozenset())  # only 仄, rhymes with nothing
    model = dataclasses.replace(w2v, stepper=prefer(w2v.vocab, {"雪": 10.0}))
    free = G.complete_poem(model, "床前明月光", n=1, **ALL_OFF).poems[0]
    assert free.text == "床前明月光，雪雪雪雪雪。雪雪雪雪雪，雪雪雪雪雪。"
    assert not free.checks["tone"] and not free.checks["rhyme"]
    for beam in (1, 8):
        tones = G.complete_poem(model, "床前明月光", n=2, beam=beam, rhyme=False, novelty=False).poems
        rhyme = G.complete_poem(model, "床前明月光", n=2, beam=beam, tones=False, novelty=False).poems
        both = G.complete_poem(model, "床前明月光", n=2, beam=beam).poems
        for poem in tones:
            assert P.check_tone(poem.text) and "雪" in poem.text and not poem.warnings
        for poem in rhyme:
            assert P.check_rhyme(poem.text) and poem.lines[2][-1] == "雪" and not poem.warnings
        for poem in both:
            assert_regulated(poem, "床前明月光")
            assert 1 <= poem.text.count("雪") <= 2  # wanted where allowed, never three times


# --- novelty --------------------------------------------------------------------------------------

@pytest.mark.parametrize("beam", [1, 8])
def test_novelty_avoids_training_lines(tmp_path, tiny_models, beam):
    folder = tmp_path / "word2vec"
    shutil.copytree(tiny_models / "word2vec", folder)
    hashes = tmp_path / "train_lines.u64"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.pop("train_lines_sha1")  # these hashes are ours, not the training run's
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    hashes.write_bytes(LineHashes.of_lines(["一二三四五"]).to_bytes())  # no line the model writes
    greedy = dict(n=1, beam=beam, seed=2)  # the same seed replays `before` exactly unless lines are blocked
    before = G.complete_poem(load_model(folder, keras=True), "白日依山尽", **greedy).poems[0]
    assert_regulated(before, "白日依山尽")
    assert before.checks["copied"] is False
    # The lines the model would write become training lines: it must write others.
    blocked = set(before.lines[1:])
    hashes.write_bytes(LineHashes.of_lines(blocked).to_bytes())
    after = G.complete_poem(load_model(folder, keras=True), "白日依山尽", **greedy).poems[0]
    assert_regulated(after, "白日依山尽")
    assert not set(after.lines) & blocked and after.checks["copied"] is False
    unchecked = G.complete_poem(load_model(folder, keras=True), "白日依山尽", novelty=False, **greedy).poems[0]
    assert unchecked.checks["copied"] is None


@pytest.mark.parametrize("beam", [1, 4])
def test_novelty_against_a_model_that_copies_the_first_line(w2v, beam):
    line = "春江花月夜"  # all in the tiny vocabulary, so the model sees them
    chain = {(a, b): 10.0 for a, b in zip(["，", "。", *line], [line[0], line[0], *line[1:], "，"])}
    model = dataclasses.replace(w2v, stepper=prefer(w2v.vocab, chain))
    copied = G.complete_poem(model, line, n=1, beam=beam, **ALL_OFF).poems[0]
    assert copied.text == "春江花月夜，春江花月夜。春江花月夜，春江花月夜。"
    poems = G.complete_poem(model, line, n=3, beam=beam, tones=False, rhyme=False).poems
    assert len({p.text for p in poems}) == len(poems) == 3  # candidates distinct
    for poem in poems:
        assert_shape(poem, line)
        assert len(set(poem.lines)) == 4  # no line repeats the first line or another line
        assert max(Counter("".join(poem.lines)).values()) <= 2 and not poem.warnings


def test_no_character_three_times_counts_heads_still_to_come(w2v):
    model = dataclasses.replace(w2v, stepper=prefer(w2v.vocab, {"秋": 10.0}))
    for poem in G.acrostic_poem(model, "春夏秋冬", n=2, tones=False, rhyme=False, max_char_uses=2).poems:
        assert poem.text.count("秋") == 2  # one head, one more: none before the head would make three
    for poem in G.acrostic_poem(model, "春夏秋冬", n=2, tones=False, rhyme=False).poems:
        assert poem.text.count("秋") == 1  # the default: the head alone


# --- seeds and beam -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["word2vec", "onehot"])
def test_same_seed_same_poems_other_seeds_differ(models, mode):
    texts = lambda seed, **kw: [p.text for p in G.complete_poem(models[mode], "春眠不觉晓", n=3, seed=seed, **kw).poems]
    assert texts(5) == texts(5)
    assert texts(5, beam=8) == texts(5, beam=8)
    assert len({tuple(texts(s)) for s in range(4)}) >= 3
    heads = lambda seed: [p.text for p in G.acrostic_poem(models[mode], "春夏秋冬", n=2, seed=seed).poems]
    assert heads(3) == heads(3) and heads(3) != heads(4)


@pytest.mark.parametrize("beam", [1, 8])
def test_three_answers_are_three_poems_and_the_first_stays_first(w2v, beam):
    """Issue 16: `generate 孤舟明月夜 --beam 8 --n 3` gave three poems sharing lines 2 and 3."""
    first = G.complete_poem(w2v, "孤舟明月夜", n=3, beam=beam, seed=0).poems
    again = G.complete_poem(w2v, "孤舟明月夜", n=3, beam=beam, seed=0).poems
    assert [p.text for p in first] == [p.text for p in again] and len(first) == 3
    for i, p in enumerate(first):
        for q in first[i + 1:]:
            assert not set(p.lines[1:]) & set(q.lines[1:]), (p.text, q.text)
    assert G.complete_poem(w2v, "孤舟明月夜", n=1, beam=beam, seed=0).poems[0].text == first[0].text


def test_beam_width_eight_gives_eight_distinct_poems(w2v):
    first = G.complete_poem(w2v, "千山鸟飞绝", n=8, beam=8)
    again = G.complete_poem(w2v, "千山鸟飞绝", n=8, beam=8)
    texts = [p.text for p in first.poems]
    assert texts == [p.text for p in again.poems] and len(set(texts)) == 8
    assert not any(p.warnings for p in first.poems)


# --- dead ends ----------------------------------------------------------------------------------

def test_dead_end_rhyme_is_relaxed_and_named(tmp_path):
    # 光 is the only 下平七阳 character: line 2 cannot open a rhyme that line 4 can close.
    model = fake_model(tmp_path, "前明月光雪日夜木石竹叶酒山天人花春风秋")
    started = time.perf_counter()
    result = G.complete_poem(model, "床前明月光", n=2, seed=0)
    assert time.perf_counter() - started < 10
    for poem in result.poems:
        assert_shape(poem, "床前明月光")
        assert not poem.checks["rhyme"] and poem.checks["tone"]
        assert len(poem.warnings) == 1 and "rhyme" in poem.warnings[0]  # tones and novelty kept
    beam = G.complete_poem(model, "床前明月光", n=2, beam=4).poems[0]
    assert any("rhyme" in w for w in beam.warnings)


def test_line_2_avoids_a_rhyme_group_line_4_could_not_close(tmp_path):
    # 人 is alone in 上平十一真 here and the model wants it everywhere: line 2 must not end on it.
    model = fake_model(tmp_path, "白日依山尽前天明月雪夜木石竹叶酒人", {"人": 10.0})
    for beam in (1, 4):  # a plain beam: noise on 17 characters walks into novelty's dead ends
        for poem in G.complete_poem(model, "白日依山尽", n=2, beam=beam, beam_noise=0.0).poems:
            assert_regulated(poem, "白日依山尽")
            assert poem.lines[1][-1] != "人" and "人" in poem.text


def test_step_with_nothing_allowed_returns_marked_poem(w2v, monkeypatch):
    real = D.Decoder.allowed

    def nothing_at_16(self, c, pos, drop=()):  # slot 16 (line 3's end) takes nothing unless tones go
        return np.zeros(len(self.vocab), bool) if pos == 16 and "tones" not in drop else real(self, c, pos, drop)

    monkeypatch.setattr(D.Decoder, "allowed", nothing_at_16)
    for beam in (1, 8):
        started = time.perf_counter()
        result = G.complete_poem(w2v, "白日依山尽", n=3, beam=beam, max_tries=5)
        assert time.perf_counter() - started < 10 and len(result.poems) == 3
        for poem in result.poems:
            assert_shape(poem, "白日依山尽")
            assert len(poem.warnings) == 1 and "could not keep tones" in poem.warnings[0]


# --- acrostic and theme ---------------------------------------------------------------------------

def test_acrostic(w2v):
    result = G.acrostic_poem(w2v, " 春夏秋冬 ", n=3)
    for poem in result.poems:
        assert [ln[0] for ln in poem.lines] == list("春夏秋冬")
        assert_regulated(poem)
    assert result.first_line == result.poems[0].lines[0]
    assert G.acrostic_poem(w2v, "春夏秋東", n=1).poems[0].lines[3][0] == "东"  # traditional heads
    refusals = [("春夏秋", "has 3"), ("春夏秋冬雪", "has 5"), ("", "is empty"), ("春,夏秋冬", "punctuation inside"),
                ("ab秋冬", "'ab' are not")]
    for bad, says in refusals:
        with pytest.raises(InputError, match=says):
            G.acrostic_poem(w2v, bad)


def test_theme_through_real_jieba(w2v):
    result = G.theme_poem(w2v, "思念故乡的秋夜", n=3)
    assert result.keywords[:2] == ["秋夜", "思念"]  # 故乡: neither character is in the tiny vocabulary
    word, ch = result.keyword_used.split(" → ")
    assert word in result.keywords and ch in word and result.plan[0] == result.keyword_used
    for poem in result.poems:
        assert ch in poem.lines[0] or any(c in poem.lines[0] for c in ch)  # the word, or one character of it
        assert_regulated(poem)
    for bad in ("abc", "的了吗", "  "):
        with pytest.raises(InputError):
            G.theme_poem(w2v, bad)


def test_every_keyword_of_a_theme_shapes_its_own_line(w2v):
    """Issue 16: the theme used to place its first keyword alone. Now line i holds keyword i; with the tones
    off every keyword finds a place, whole when the model knows both characters of a two-character word."""
    result = G.theme_poem(w2v, "春天的江边送别朋友", n=3, tones=False)
    assert len(result.plan) >= 3
    for poem in result.poems:
        for line, step in zip(poem.lines, result.plan):
            placed = step.split(" → ")[1]
            assert placed in line, (step, poem.text)
        assert all(placed[-1] != line[-1] for line, placed in zip(poem.lines[1:], result.plan[1:]))  # not on a rhyme
    assert G.theme_plan([("秋夜", ["秋", "夜"]), ("夜色", ["夜", "色"]), ("思念", ["思", "心"])]) == [
        ("秋夜", "秋夜", "秋"), ("夜色", "色", "色"), ("思念", "思", "思")]  # 夜 once; 念 unknown: its nearest, 思


def test_theme_maps_missing_characters_through_vectors(tmp_path, tiny_models):
    from poetry_lstm.vectors import load_vectors

    vectors = load_vectors(tiny_models / "word2vec" / "vectors")
    from conftest import CHARS
    model = fake_model(tmp_path, CHARS.replace("秋", "").replace("夜", ""))
    with pytest.raises(InputError):
        G.theme_poem(model, "秋夜")
    near = {c for k in "秋夜" for c, _ in vectors.most_similar(k, topn=20)}
    result = G.theme_poem(model, "秋夜", vectors=vectors, n=2)
    ch = result.keyword_used.split(" → ")[1]
    assert ch in near and ch in model.vocab and all(ch in p.lines[0] for p in result.poems)


# --- input -----------------------------------------------------------------------------------------

def test_first_line_forms_accepted(w2v):
    for raw in ("床前明月光", "床前明月光，", "床前明月光,", " 床前明月光。 ", "床前明月光.", "牀前明月光"):
        result = G.complete_poem(w2v, raw, n=1)
        assert result.first_line == "床前明月光" and result.poems[0].text.startswith("床前明月光，")
    result = G.complete_poem(w2v, "舉頭望明月", n=1)
    assert result.first_line == "举头望明月" and result.poems[0].lines[0] == "举头望明月"
    assert any("举头" in w and "vocabulary" in w for w in result.warnings)


@pytest.mark.parametrize("raw, says", [
    ("", "is empty"), ("   ", "is empty"), ("床前明月", "has 4"), ("床前明月光光", "has 6"),
    ("床前,明月光", "punctuation inside"), ("床前明月光，疑是地上霜。", "punctuation inside"),
    ("床前明月ab", "and 'ab' are not Chinese characters"), ("床前 明月光", "and ' ' is not one"),
    ("abcde", "and 'abcde' are not Chinese characters"),
])
def test_first_line_refused(raw, says):
    with pytest.raises(InputError, match=says):
        G.normalize_line(raw)


@pytest.fixture(scope="module")
def run_cli(tiny_root, tiny_models):
    def run(*args):
        result = CliRunner().invoke(cli, ["--config", str(tiny_root / "config.toml"), "generate", *args])
        assert "Traceback" not in result.output
        return result
    return run


@pytest.mark.parametrize("args, says", [
    ([""], "is empty"), (["床前明月"], "has 4"), (["床前明月abc"], "'abc' are not Chinese"),
    (["床前。明月光"], "punctuation inside"), (["--acrostic", "春夏秋"], "four Chinese characters"),
    (["--theme", "的了吗"], "no keyword"), (["--theme", "abc"], "no keyword"), ([], "exactly one of"),
])
def test_cli_refuses_with_one_sentence_and_exit_2(run_cli, args, says):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert says in result.stderr and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


def test_cli_json(run_cli):
    result = run_cli("牀前明月光。", "--json", "--n", "2", "--seed", "3")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["first_line"] == "床前明月光" and len(out["poems"]) == 2
    for poem in out["poems"]:
        assert len(poem["text"]) == 24 and len(poem["lines"]) == 4 and isinstance(poem["score"], float)
        assert {"form", "tone", "rhyme", "copied"} <= set(poem["checks"]) and isinstance(poem["warnings"], list)
        assert poem["checks"]["tone"] and poem["checks"]["rhyme"] and poem["checks"]["copied"] is False
    again = json.loads(run_cli("床前明月光", "--json", "--n", "2", "--seed", "3").stdout)
    assert again["poems"] == out["poems"]


# --- decoding for meaning (issue 10) -------------------------------------------------------------

def test_an_empty_or_missing_hash_file_is_an_error_unless_novelty_is_off(tmp_path, tiny_models):
    models = tmp_path / "models"
    shutil.copytree(tiny_models / "word2vec", models / "word2vec")
    for content in (b"", None):
        if content is None:
            (models / "train_lines.u64").unlink()
        else:
            (models / "train_lines.u64").write_bytes(content)
        with pytest.raises(PoetryError, match="train_lines.u64"):
            load_model(models / "word2vec")  # the copy check needs them: loading says so at once
        unchecked = load_model(models / "word2vec", line_hashes=False)  # what `generate --no-novelty` loads
        poem = G.complete_poem(unchecked, "白日依山尽", n=1, novelty=False).poems[0]
        assert poem.checks["copied"] is None
        with pytest.raises(PoetryError, match="train_lines.u64"):  # and a poem that checks copies still asks for them
            G.complete_poem(unchecked, "白日依山尽", n=1)


def test_hashes_of_another_corpus_are_refused_unless_the_config_names_them_its_copy_check(tmp_path, tiny_models):
    from poetry_lstm.card import rewrite
    from poetry_lstm.metrics import LineHashes

    models = tmp_path / "models"
    shutil.copytree(tiny_models / "word2vec", models / "word2vec")
    other = LineHashes.of_lines(["白日依山尽", "黄河入海流"])  # the corpus respelt, say
    (models / "train_lines.u64").write_bytes(other.to_bytes())
    with pytest.raises(PoetryError, match="another corpus") as err:
        load_model(models / "word2vec")
    assert err.value.kind == "hashes_mismatch"
    config_file = models / "word2vec" / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["copy_check"] = {"lines": 2, "sha1": other.digest(), "why": "the same poems, respelt"}
    config_file.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    trained = load_model(models / "word2vec")  # the copy check it names is the one it reads
    assert trained.known_lines.digest() == other.digest() and "白日依山尽" in trained.known_lines
    rewrite(models / "word2vec")  # and its card says which lines it reads
    assert "the same poems, respelt" in (models / "word2vec" / "card.md").read_text(encoding="utf-8")


def test_the_first_answers_do_not_depend_on_how_many_are_asked_for(tiny_models):
    trained = load_model(tiny_models / "word2vec", keras=True)
    one = G.complete_poem(trained, "白日依山尽", n=1, seed=5).poems
    three = G.complete_poem(trained, "白日依山尽", n=3, seed=5).poems
    assert one[0].text == three[0].text and len({p.text for p in three}) == 3


def test_line_search_keeps_the_better_half_within_each_answer(tiny_models):
    from poetry_lstm.decoder import Candidate, Decoder, resample_lines

    trained = load_model(tiny_models / "word2vec")
    dec = Decoder(trained, G.settings_for(trained, None, line_search=True))
    cands = [Candidate(list("山水风月花，") + [""] * 18, {}, None, None, logp=lp, generated=1)
             for lp in (-1.0, -5.0, -2.0, -9.0, -3.0, -4.0)]
    source = resample_lines(dec, cands, [0, 0, 0, 0, 1, 1])
    # answer 0 keeps 0 and 2 (its best two), and 1 and 3 continue copies of them; answer 1's 5 copies its 4
    assert source.tolist() == [0, 0, 2, 2, 4, 4]
    assert [c.logp for c in cands] == [-1.0, -1.0, -2.0, -2.0, -3.0, -3.0]
    assert cands[1] is not cands[0] and cands[1].chars is not cands[0].chars  # copies write on their own


def test_line_search_gives_poems_the_model_scores_no_worse_and_the_same_again(tiny_models):
    trained = load_model(tiny_models / "word2vec")
    ranks = []
    for seed in range(6):
        plain = G.complete_poem(trained, "白日依山尽", n=1, seed=seed).poems[0]
        searched = G.complete_poem(trained, "白日依山尽", n=1, seed=seed, line_search=True).poems[0]
        assert searched.text == G.complete_poem(trained, "白日依山尽", n=1, seed=seed, line_search=True).poems[0].text
        assert searched.checks["tone"] and searched.checks["rhyme"]
        ranks.append(searched.rank - plain.rank)
    assert sum(ranks) > 0  # the search keeps what the score prefers, most of the time
    three = G.complete_poem(trained, "白日依山尽", n=3, seed=5, line_search=True).poems
    assert len({p.text for p in three}) == 3
    assert three[0].text == G.complete_poem(trained, "白日依山尽", n=1, seed=5, line_search=True).poems[0].text


def test_line_search_poems_score_as_the_model_reads_them(tiny_models):
    """A copied candidate continues from its source's LSTM state: its score is the model's on its own text."""
    trained = load_model(tiny_models / "word2vec")
    for seed in range(4):
        poem = G.complete_poem(trained, "白日依山尽", n=1, seed=seed, line_search=True).poems[0]
        ids = trained.vocab.encode(poem.text)
        state, total, written = trained.stepper.initial_state(1), 0.0, 0
        for pos, (now, nxt) in enumerate(zip(ids[:-1], ids[1:])):
            logp, state = trained.stepper.step(np.array([now]), state)
            if pos >= 6 and poem.text[pos] not in "，。":  # lines 2–4, the decoder's own characters
                total, written = total + float(logp[0, nxt]), written + 1
        assert written == 15 and poem.score == pytest.approx(total / written, abs=1e-3)


@pytest.mark.parametrize("seed", [-5, 2**70])
def test_any_integer_seed_gives_a_poem_and_the_same_poem_again(tiny_models, seed):
    trained = load_model(tiny_models / "word2vec", keras=True)
    first = G.complete_poem(trained, "白日依山尽", n=1, seed=seed).poems[0].text
    assert first == G.complete_poem(trained, "白日依山尽", n=1, seed=seed).poems[0].text


def test_no_stutter_and_no_echo_unless_a_real_double(tmp_path):
    # The model wants to repeat 是 after 是 and to write 春风 again; 悠 is a real 叠字 of the training lines.
    chars = "是春风悠山水云花人来"
    wants = {("是", "是"): 5.0, ("春", "风"): 5.0, ("悠", "悠"): 5.0, "是": 2.0}
    trained = fake_model(tmp_path, chars, wants, doubles="悠")
    for seed in range(5):
        poem = G.complete_poem(trained, "春风是山水", n=1, seed=seed, tones=False, rhyme=False).poems[0]
        body = poem.text[6:]
        assert "是是" not in body and "春风" not in body, poem.text
    dec = D.Decoder(trained, settings(tones=False, rhyme=False))
    c = D.Candidate(list("悠") + [""] * 23, {}, None, None)
    assert trained.vocab.id("悠") not in dec.repeats(c, 1)  # 悠悠 at the start of a line: allowed
    c = D.Candidate(list("山悠") + [""] * 22, {}, None, None)
    assert trained.vocab.id("悠") in dec.repeats(c, 2)  # but not in the middle of one


def test_a_real_double_only_where_real_lines_double_it(tmp_path):
    # A vocabulary that knows the places: 悠悠 is attested at line places 1–2 only.
    trained = fake_model(tmp_path, "悠山水云花人来", {("悠", "悠"): 5.0}, doubles="悠", doubles_at=("", "悠", "", ""))
    dec = D.Decoder(trained, settings(tones=False, rhyme=False))
    at = lambda text: dec.repeats(D.Candidate(list(text) + [""] * (24 - len(text)), {}, None, None), len(text))
    uu = trained.vocab.id("悠")
    assert uu in at("悠") and uu not in at("山悠") and uu in at("山水悠") and uu in at("山水云悠")
    assert uu in at("山悠悠")  # never three in a row


def test_the_frequency_penalty_moves_choices_away_from_frequent_characters(tmp_path):
    chars = "不山水云花人来去风月"
    tokens = SPECIALS + ("，", "。") + tuple(chars)
    counts = tuple(0 if t in SPECIALS else (10000 if t == "不" else 10) for t in tokens)
    trained = fake_model(tmp_path, chars, {"不": 1.0, "山": 0.5}, counts=counts)
    share = lambda penalty: sum(p.text[6:].count("不") for seed in range(10) for p in G.complete_poem(
        trained, "山水云花人", n=1, seed=seed, frequency_penalty=penalty, **ALL_OFF).poems)
    assert share(0.0) > 3 * max(share(0.5), 1)


def test_acrostic_heads_that_fit_no_form_still_give_a_poem_naming_them(tiny_models):
    trained = load_model(tiny_models / "word2vec", keras=True)
    for heads in ("我爱你们", "睳慏肉吮"):
        result = G.acrostic_poem(trained, heads, n=2, seed=1)
        assert result.poems and all(p.text[0::6][:4] == heads for p in result.poems)
    result = G.acrostic_poem(trained, "我爱你们", n=1, seed=1)
    assert any("break" in w for w in result.warnings)


def test_a_first_line_that_fits_no_form_follows_the_form_it_breaks_least(tiny_models):
    trained = load_model(tiny_models / "word2vec", keras=True)
    line = "我爱你们啊"
    assert not P.forms_for_first_line(line)
    result = G.complete_poem(trained, line, n=2, seed=0)
    for poem in result.poems:
        assert poem.form in P.closest_forms(line)
        assert poem.breaks == [(1, i + 1) for i in P.breaks(line, P.FORMS[poem.form][0])]
        assert P.check_after_first(poem.text), poem.text  # lines 2–4 are regulated all the same
    assert any("breaks least" in w for w in result.warnings)


def test_a_first_line_in_extension_b_is_read_as_unknown_not_refused(tiny_models):
    result = G.complete_poem(load_model(tiny_models / "word2vec", keras=True), "𠀀𠀁𠀂𠀃𠀄", n=1, seed=0)
    assert result.poems[0].lines[0] == "𠀀𠀁𠀂𠀃𠀄" and P.check_form(result.poems[0].text)
    assert any("not in the model's vocabulary: read as unknown" in w for w in result.warnings)


def test_output_is_simplified_as_the_input_is(tmp_path):
    # The model likes the variant 疎 and the traditional 雲; neither may be written, 疏 and 云 may.
    trained = fake_model(tmp_path, "疎疏雲云山水风月花人来去", {"疎": 6.0, "雲": 6.0, "疏": 2.0})
    for seed in range(5):
        body = G.complete_poem(trained, "山水风月花", n=1, seed=seed, **ALL_OFF).poems[0].text[6:]
        assert "疎" not in body and "雲" not in body and "疏" in body
    assert VARIANT_FORMS["疎"] == "疏" and not build_tables(trained.vocab).writable[trained.vocab.id("疎")]


def test_one_use_per_character_leaves_no_repeat_but_a_real_double_in_place(tmp_path):
    # The model wants 山 and 水 everywhere and 悠悠 where real lines double it (line places 1–2).
    trained = fake_model(tmp_path, "山水悠云花人来去风月天江湖海林木石竹叶松", {"山": 3.0, "水": 3.0, ("悠", "悠"): 6.0,
                         "悠": 2.0}, doubles="悠", doubles_at=("", "悠", "", ""))
    for seed in range(6):
        free = dict(n=1, seed=seed, tones=False, rhyme=False)
        twice = G.complete_poem(trained, "云花人来去", **free, max_char_uses=2).poems[0]
        once = G.complete_poem(trained, "云花人来去", **free, max_char_uses=1).poems[0]
        body = twice.text[6:].replace("，", "").replace("。", "")
        assert max(Counter(body).values()) == 2  # the old rule: twice at most
        body = "".join(line[i] for line in once.lines for i in range(5) if i == 0 or line[i - 1] != line[i])
        assert len(set(body)) == len(body), once.text  # each character once, a 叠字 in place counting once
        assert not once.warnings
    doubled = [G.complete_poem(trained, "云花人来去", n=1, seed=s, tones=False, rhyme=False, max_char_uses=1).poems[0]
               for s in range(6)]
    assert any("悠悠" in p.text[6:] for p in doubled)  # the real 叠字 is still written where it belongs
