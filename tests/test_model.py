"""Vocabulary, windows, network, stepper and model loading: `python -m pytest tests/test_model.py -q`.

Windows and the network are checked on tiny arrays; saving, loading and the NumPy stepper on the
real tiny models of `tiny_models` (trained once per session by conftest).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import numpy as np
import pytest
from conftest import synthetic_poems

from poetry_lstm.errors import PoetryError
from poetry_lstm.loading import load_model
from poetry_lstm.metrics import LineHashes
from poetry_lstm.modeldir import SPECIALS, Vocab
from poetry_lstm.network import build_model, count_windows, poem_ids, window_dataset
from poetry_lstm.stepper import LstmStepper

POEMS = synthetic_poems(10, seed=3)


@pytest.fixture(scope="module")
def vocab():
    return Vocab.build(POEMS, min_count=1)


# ---- vocabulary -------------------------------------------------------------------------------
def test_vocab_specials_ids_and_min_count(tmp_path):
    v = Vocab.build(["山山水", "山月"], min_count=2)
    assert v.tokens == SPECIALS + ("山",)  # 水 and 月 occur once: below min_count
    assert v.encode("山水") == [2, 3, 1]  # start, 山, unknown
    assert v.encode("山", start=False) == [3]
    assert "山" in v and "水" not in v and "<s>" not in v
    v.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == v


@pytest.mark.parametrize("content", ['{"tokens": ["a", "b"]}', "[1, 2]", '{"tokens": ["<pad>", "<unk>", "<s>", 5]}',
                                     "not json {"])
def test_vocab_load_refuses_corrupt_file(tmp_path, content):
    (tmp_path / "vocab.json").write_text(content, encoding="utf-8")
    with pytest.raises(PoetryError, match="vocab"):
        Vocab.load(tmp_path / "vocab.json")


def test_line_hashes_hold_each_line_of_each_poem_once():
    poem = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    want = sorted(int(hashlib.sha1(line.encode()).hexdigest()[:16], 16)
                  for line in ("白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"))
    hashes = LineHashes.of_poems([poem, poem])
    assert [int(v) for v in hashes.values] == want  # duplicates collapse
    assert "黄河入海流" in hashes and "黄河入海" not in hashes and "白日依山" + "尽" in hashes


def test_vocab_keeps_counts_and_real_doubles(tmp_path):
    texts = (["悠悠白日尽，黄河入海流。欲穷千里目，更上一层楼。"] * 3
             + ["是是白日尽，黄河入海流。欲穷千里目，更上一层楼。"]
             + ["白日尽悠悠，黄河入海流。欲穷千里目，更上一层楼。"])
    vocab = Vocab.build(texts, 1)
    assert vocab.doubles == "悠"  # 悠悠 four times is a 叠字; 是是 once is not
    assert vocab.doubles_at == ("悠", "", "", "")  # and it opens lines: once at the end is not enough there
    assert vocab.counts[vocab.id("悠")] == 8 and vocab.counts[:3] == (0, 0, 0)
    vocab.save(tmp_path / "vocab.json")
    again = Vocab.load(tmp_path / "vocab.json")
    assert (again == vocab and again.counts == vocab.counts and again.doubles == "悠"
            and again.doubles_at == vocab.doubles_at)


# ---- windows ----------------------------------------------------------------------------------
def _collect(ds):
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
    return xs, ys


def test_poem_ids_start_token_then_characters(vocab):
    ids = poem_ids(POEMS, vocab)
    assert ids.shape == (10, 25) and ids.dtype == np.int32
    assert (ids[:, 0] == 2).all()
    assert [vocab.tokens[i] for i in ids[0, 1:]] == list(POEMS[0])


def test_windows_24_stride_24_cover_each_poem_once(vocab):
    ids = poem_ids(POEMS, vocab)
    xs, ys = _collect(window_dataset(ids, 24, 24, batch_size=4))
    assert [x.shape for x in xs] == [(4, 24), (4, 24), (2, 24)]
    assert all(x.shape == y.shape for x, y in zip(xs, ys))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert len(x) == count_windows(10, 25, 24, 24) == 10
    np.testing.assert_array_equal(x, ids[:, :24])  # unshuffled: poem order
    np.testing.assert_array_equal(y, ids[:, 1:])   # every position predicts the next token
    assert (x[:, 0] == 2).all()                    # the start token comes first
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_windows_6_stride_3_every_frame_shifted_by_one(vocab):
    ids = poem_ids(POEMS[:3], vocab)
    xs, ys = _collect(window_dataset(ids, 6, 3, batch_size=5))
    x, y = np.concatenate(xs), np.concatenate(ys)
    per_poem = 1 + (25 - 7) // 3
    assert per_poem == 7 and len(x) == count_windows(3, 25, 6, 3) == 21
    assert x.shape == y.shape == (21, 6)
    expected_x = [ids[p, s:s + 6] for p in range(3) for s in range(0, 19, 3)]
    expected_y = [ids[p, s + 1:s + 7] for p in range(3) for s in range(0, 19, 3)]
    np.testing.assert_array_equal(x, np.stack(expected_x))
    np.testing.assert_array_equal(y, np.stack(expected_y))
    assert x[0, 0] == 2 and (x[1:7, 0] != 2).all()  # only a poem's first window holds the start token


def test_shuffled_windows_keep_their_pairs(vocab):
    ids = poem_ids(POEMS, vocab)
    xs, ys = _collect(window_dataset(ids, 8, 4, batch_size=7, shuffle=100, seed=1))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert len(x) == count_windows(10, 25, 8, 4)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    frames = {tuple(ids[p, s:s + 9]) for p in range(10) for s in range(0, 17, 4)}
    assert {tuple(np.append(a, b[-1])) for a, b in zip(x, y)} == frames


def test_shuffle_mixes_whole_poems_not_only_a_buffer(vocab):
    # The corpus lists 五绝 before 五律 halves: a window buffer smaller than the corpus alone would
    # serve the first poems first. The poems themselves are shuffled whatever the buffer.
    poems = synthetic_poems(200, seed=4)
    ids = poem_ids(poems, Vocab.build(poems, 1))
    x = next(iter(window_dataset(ids, 24, 24, batch_size=20, shuffle=1, seed=0)))[0].numpy()
    rows = [int(np.flatnonzero((ids[:, :24] == row).all(1))[0]) for row in x]
    assert max(rows) >= 100 and len(set(rows)) == 20
    again = next(iter(window_dataset(ids, 24, 24, batch_size=20, shuffle=1, seed=0)))[0].numpy()
    np.testing.assert_array_equal(x, again)  # seeded: the same order each run


@pytest.mark.parametrize("window,stride,batch", [(24, 24, 4), (6, 3, 5), (8, 4, 64)])
def test_dataset_states_its_length(vocab, window, stride, batch):
    # A known length lets Keras end each epoch cleanly (no "input ran out of data" warning).
    ds = window_dataset(poem_ids(POEMS, vocab), window, stride, batch_size=batch, shuffle=50)
    assert int(ds.cardinality()) == -(-count_windows(10, 25, window, stride) // batch) == sum(1 for _ in ds)


@pytest.mark.parametrize("window,stride,match", [(25, 1, "Window 25"), (24, 0, "at least 1"), (0, 1, "at least 1")])
def test_bad_window_is_refused(vocab, window, stride, match):
    with pytest.raises(PoetryError, match=match):
        window_dataset(poem_ids(POEMS, vocab), window, stride, batch_size=4)


# ---- network ----------------------------------------------------------------------------------
def test_build_model_modes():
    vectors = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    w2v = build_model(30, "word2vec", units=12, layers=2, dropout=0.1, embedding_dim=99, vectors=vectors)
    emb = w2v.get_layer("embedding")
    assert not emb.trainable and emb.get_weights()[0].shape == (30, 8)
    np.testing.assert_allclose(emb.get_weights()[0], vectors)
    assert build_model(30, "word2vec", 12, 2, 0.1, 8, fine_tune_vectors=True).get_layer("embedding").trainable
    onehot = build_model(30, "onehot", units=12, layers=3, dropout=0.1, embedding_dim=8)
    assert onehot.get_layer("embedding").trainable
    assert [layer.name for layer in onehot.layers if layer.name.startswith("lstm_")] == ["lstm_0", "lstm_1", "lstm_2"]
    out = onehot.predict(np.full((2, 5), 3, np.int32), verbose=0)
    assert out.shape == (2, 5, 30)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(PoetryError, match="Unknown mode"):
        build_model(30, "bag", 12, 2, 0.1, 8)


def test_rhyme_context_is_line_two_end_after_it_and_zero_before():
    from poetry_lstm.layout import LINE_TWO_END_STEP as LINE_TWO_END
    from poetry_lstm.network import custom_layers

    features = np.arange(2 * 24 * 3, dtype=np.float32).reshape(2, 24, 3)
    out = np.asarray(custom_layers()["LineTwoEnd"]()(features))
    assert not out[:, :LINE_TWO_END + 1].any()
    np.testing.assert_array_equal(out[:, LINE_TWO_END + 1:],
                                  np.broadcast_to(features[:, None, LINE_TWO_END], (2, 12, 3)))
    with pytest.raises(PoetryError, match="prosody = true"):
        build_model(10, "onehot", 4, 2, 0.1, 4, prosody_dim=0, rhyme_context=True)


def test_rhyme_context_found_from_the_marks_equals_the_fixed_place_for_both_forms():
    """One network for both forms (bench/joint_forms.py) finds line 2's end before each poem's first 。:
    on whole 五绝 and 七绝 windows, what the fixed place of each form gives; nothing in a window without 。."""
    from poetry_lstm.layout import FIVE, SEVEN
    from poetry_lstm.network import custom_layers

    rng = np.random.default_rng(0)
    period = 3
    for shape in (FIVE, SEVEN):
        ids = rng.integers(5, 50, size=(2, 1 + shape.slots)).astype(np.int32)
        ids[:, 0] = 2
        for pos, mark in shape.marks.items():
            ids[:, 1 + pos] = period if mark == "。" else 4
        ids = ids[:, :-1]  # the inputs: <s> and every slot but the last
        features = rng.normal(size=(2, shape.slots, 3)).astype(np.float32)
        fixed = np.asarray(custom_layers()["LineTwoEnd"](shape.line_two_end_step)(features))
        found = np.asarray(custom_layers()["LineTwoEndFound"](period)([features, ids]))
        assert fixed[:, shape.line_two_end_step + 1:].any()
        np.testing.assert_array_equal(found, fixed)
        head = np.asarray(custom_layers()["LineTwoEndFound"](period)([features[:, :8], ids[:, :8]]))
        assert not head.any()
    # rows of one batch find their own place
    features = rng.normal(size=(2, 20, 3)).astype(np.float32)
    ids = np.full((2, 20), 9, np.int32)
    ids[0, 12], ids[1, 16] = period, period
    found = np.asarray(custom_layers()["LineTwoEndFound"](period)([features, ids]))
    np.testing.assert_array_equal(found[0, 12:], np.broadcast_to(features[0, 11], (8, 3)))
    np.testing.assert_array_equal(found[1, 16:], np.broadcast_to(features[1, 15], (4, 3)))
    assert not found[0, :12].any() and not found[1, :16].any()


def test_benches_networks_train_save_and_are_refused_by_the_stepper(tmp_path):
    """A network for both forms (period_id) trains on batches of either length; one with a condition vector
    reads it at every step; both survive save and load; the decoder's stepper refuses both in one sentence."""
    import keras

    from poetry_lstm.network import custom_layers

    rng = np.random.default_rng(1)
    table = rng.normal(size=(50, 4)).astype(np.float32)
    joint = build_model(50, "onehot", 8, 2, 0.1, 8, prosody_dim=4, rhyme_context=True, period_id=3, prosody=table)
    joint.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    for length in (24, 32):
        x = rng.integers(5, 50, size=(4, length)).astype(np.int32)
        x[:, length // 2] = 3
        assert np.isfinite(joint.train_on_batch(x, x))
    titled = build_model(50, "onehot", 8, 2, 0.0, 8, condition_dim=6)
    x = {"ids": rng.integers(5, 50, size=(2, 24)).astype(np.int32), "condition": rng.normal(size=(2, 6))}
    with_condition = titled.predict(x, verbose=0)
    assert not np.allclose(with_condition, titled.predict({**x, "condition": np.zeros((2, 6))}, verbose=0))
    custom_layers()
    for model, inputs in ((joint, x["ids"]), (titled, x)):
        model.save(tmp_path / "m.keras")
        again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
        np.testing.assert_allclose(again.predict(inputs, verbose=0), model.predict(inputs, verbose=0), rtol=1e-5)
        with pytest.raises(ValueError, match="stepper runs the shipped kind only"):
            LstmStepper(model)


def test_prosody_layers_read_the_table_and_score_whole_groups():
    from poetry_lstm.prosody import feature_table, ping_groups

    tokens = SPECIALS + tuple("东风红中山寒白月")
    table = feature_table(tokens)
    model = build_model(len(tokens), "onehot", 12, 2, 0.1, 8, prosody_dim=table.shape[1], prosody=table)
    assert not model.get_layer("prosody").trainable and not model.get_layer("group_spread").trainable
    np.testing.assert_array_equal(model.get_layer("prosody").get_weights()[0], table)
    np.testing.assert_array_equal(model.get_layer("group_spread").get_weights()[0], table.T)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert "group_scores" in trainable and not trainable & {"prosody", "group_spread"}
    # A group score lifts every character of the group, and only those: 东风红中 share 上平一东.
    group = 2 + ping_groups().index("上平一东")
    scores = model.get_layer("group_scores")
    w, b = scores.get_weights()
    scores.set_weights([np.zeros_like(w), np.eye(table.shape[1])[group] * 5])
    boosted = model.predict(np.full((1, 1), 3, np.int32), verbose=0)[0, 0]
    scores.set_weights([np.zeros_like(w), np.zeros_like(b)])
    plain = model.predict(np.full((1, 1), 3, np.int32), verbose=0)[0, 0]
    lifted = np.log(boosted / plain)
    east = [tokens.index(c) for c in "东风红中"]
    rest = [tokens.index(c) for c in "山寒白月"]
    assert lifted[east].min() > lifted[rest].max() + 4.9


@pytest.mark.parametrize("prosody_dim,rhyme_context", [(0, False), (32, False), (32, True)])
def test_stepper_and_fast_loader_match_keras_with_and_without_prosody(tmp_path, prosody_dim, rhyme_context):
    from poetry_lstm.prosody import feature_table

    vocab = Vocab(SPECIALS + tuple("东风红中山寒白月花春秋"))
    table = feature_table(vocab.tokens) if prosody_dim else None
    args = dict(vocab_size=len(vocab), mode="onehot", units=10, layers=2, dropout=0.1, embedding_dim=6,
                prosody_dim=prosody_dim, rhyme_context=rhyme_context)
    model = build_model(**args, prosody=table)
    folder = tmp_path / "onehot"
    folder.mkdir()
    model.save(folder / "model.keras")
    vocab.save(folder / "vocab.json")
    (folder / "config.json").write_text(json.dumps({"model_args": args}), encoding="utf-8")
    fast = load_model(folder, line_hashes=False)  # a bare folder: no training lines beside it
    assert fast.keras_model is None and (fast.stepper.prosody is None) == (not prosody_dim)
    assert fast.stepper.rhyme_context == rhyme_context
    ids = np.random.default_rng(3).integers(2, len(vocab), size=(2, 24)).astype(np.int32)
    full = np.log(model.predict(ids, verbose=0))  # (2, 24, vocab)
    # shorter than line 2
    np.testing.assert_allclose(np.log(model.predict(ids[:, :7], verbose=0)), full[:, :7], atol=1e-5)
    state = fast.stepper.initial_state(2)
    for t in range(24):
        logp, state = fast.stepper.step(ids[:, t], state)
        np.testing.assert_allclose(logp, full[:, t], atol=1e-4)


# ---- trained models: save/load and the stepper --------------------------------------------------
@pytest.mark.parametrize("mode", ["word2vec", "onehot"])
def test_model_file_is_safe_and_rebuildable(tiny_models, mode):
    folder = tiny_models / mode
    with zipfile.ZipFile(folder / "model.keras") as z:
        arch = z.read("config.json").decode("utf-8")
    assert "Lambda" not in arch and "lambda" not in arch.lower()
    trained = load_model(folder, keras=True)  # safe_mode=True inside
    assert trained.mode == mode and trained.vocab == Vocab.load(folder / "vocab.json")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    rebuilt = build_model(**config["model_args"])
    rebuilt.set_weights(trained.keras_model.get_weights())  # shapes must match one for one
    ids = np.array([trained.vocab.encode(p)[:-1] for p in synthetic_poems(4, seed=11)], np.int32)
    np.testing.assert_allclose(rebuilt.predict(ids, verbose=0), trained.keras_model.predict(ids, verbose=0), atol=1e-6)


def test_save_then_load_gives_identical_predictions(tiny_models, tmp_path):
    import keras

    trained = load_model(tiny_models / "onehot", keras=True)
    copy = tmp_path / "onehot"
    shutil.copytree(tiny_models / "onehot", copy)
    (copy / "model.keras").unlink()
    trained.keras_model.save(copy / "model.keras")
    again = load_model(copy, keras=True, line_hashes=False)
    ids = np.array([trained.vocab.encode(p)[:-1] for p in synthetic_poems(5, seed=12)], np.int32)
    before = trained.keras_model.predict(ids, verbose=0)
    np.testing.assert_array_equal(again.keras_model.predict(ids, verbose=0), before)
    assert (keras.saving.load_model(copy / "model.keras", safe_mode=True).count_params()
            == trained.keras_model.count_params())


@pytest.mark.parametrize("mode", ["word2vec", "onehot"])
def test_stepper_equals_predict_on_the_whole_prefix(tiny_models, mode):
    trained = load_model(tiny_models / mode, keras=True)
    poems = synthetic_poems(3, seed=13)
    ids = np.array([trained.vocab.encode(p) for p in poems], np.int32)  # (3, 25)
    full = np.log(trained.keras_model.predict(ids[:, :-1], verbose=0))  # (3, 24, vocab)
    stepper = trained.stepper
    assert isinstance(stepper, LstmStepper) and len(stepper.cells) == 2
    state = stepper.initial_state(3)
    for t in range(24):
        logp, state = stepper.step(ids[:, t], state)
        np.testing.assert_allclose(logp, full[:, t], atol=1e-4)
    logp, _ = stepper.run(list(ids[1, :10]), batch=2)
    np.testing.assert_allclose(logp, np.stack([full[1, 9]] * 2), atol=1e-4)


# ---- loading bad directories --------------------------------------------------------------------
@pytest.fixture
def model_copy(tiny_models, tmp_path):
    copy = tmp_path / "onehot"
    shutil.copytree(tiny_models / "onehot", copy)
    return copy


def _one_sentence(exc: PoetryError) -> str:
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_load_missing_dir(tmp_path):
    with pytest.raises(PoetryError, match=r"poetry-lstm train --mode onehot") as info:
        load_model(tmp_path / "onehot", keras=True)
    _one_sentence(info.value)


@pytest.mark.parametrize("name", ["model.keras", "vocab.json", "config.json"])
def test_load_missing_file(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises(PoetryError, match=f"lacks {name}") as info:
        load_model(model_copy, keras=True)
    _one_sentence(info.value)


def test_load_truncated_model_file(model_copy):
    data = (model_copy / "model.keras").read_bytes()
    (model_copy / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(PoetryError, match="cannot be loaded.*poetry-lstm train --mode onehot") as info:
        load_model(model_copy, keras=True)
    _one_sentence(info.value)


def test_load_foreign_model_file(model_copy):
    (model_copy / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PoetryError, match="cannot be loaded"):
        load_model(model_copy, keras=True)


@pytest.mark.parametrize("name,content,match", [
    ("vocab.json", "\x00garbage{", "vocabulary"),
    ("vocab.json", '{"tokens": ["x"]}', "vocabulary .* is corrupt"),
    ("config.json", "{truncated", "model config"),
    ("config.json", '{"no_model_args": 1}', "model config .* is corrupt"),
])
def test_load_corrupt_json(model_copy, name, content, match):
    (model_copy / name).write_text(content, encoding="utf-8")
    with pytest.raises(PoetryError, match=match) as info:
        load_model(model_copy, keras=True)
    _one_sentence(info.value)


def test_load_vocab_of_another_model(model_copy):
    vocab = Vocab.load(model_copy / "vocab.json")
    Vocab(vocab.tokens + ("龘",)).save(model_copy / "vocab.json")
    with pytest.raises(PoetryError, match="vocabulary has"):
        load_model(model_copy, keras=True)
