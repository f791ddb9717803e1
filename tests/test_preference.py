"""bench/preference.py: the scores it keeps are the decoder's own, and its concordance counts as it says."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import rated_sheet

BENCH = Path(__file__).parent.parent / "bench"
sys.path.insert(0, str(BENCH))  # preference.py reads blind_reading.py beside it
SPEC = importlib.util.spec_from_file_location("preference", BENCH / "preference.py")
preference = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(preference)


def test_the_teacher_forced_score_is_the_one_the_decoder_sampled_with(tiny_models):
    from poetry_lstm.generate import complete_poem
    from poetry_lstm.loading import load_model

    model = load_model(tiny_models / "word2vec")
    poems = complete_poem(model, "春风吹柳絮", n=4, candidates=1, seed=3).poems
    forced = preference.forward_logp(model, [p.text for p in poems])
    assert forced.shape == (len(poems),)
    np.testing.assert_allclose(forced, [p.score for p in poems], atol=2e-4)


def test_concordance_counts_pairs_the_reader_rated_apart():
    poems = {lab: {"s": v} for lab, v in zip("ABCD", (4.0, 3.0, 2.0, 2.0))}
    ratings = {"A": 3, "B": 2, "C": 1, "D": 1}  # C and D tie: that pair does not count
    value = lambda p, lab: p[lab]["s"]  # noqa: E731
    assert preference.concordance([(poems, ratings)], value) == (1.0, 5)
    assert preference.concordance([(poems, {"A": 1, "B": 2, "C": 3, "D": 3})], value) == (0.0, 5)
    flat = {lab: {"s": 1.0} for lab in "ABCD"}
    assert preference.concordance([(flat, ratings)], value) == (0.5, 5)


def test_score_reads_the_key_and_both_readers(tmp_path):
    rng = np.random.default_rng(0)
    items, first, second = [], [], []
    for i in range(1, 9):
        ratings = {lab: int(r) for lab, r in zip("ABCDEF", rng.integers(1, 6, 6))}
        items.append({"item": i, "poems": {lab: {"poem": lab * 24, "good": r + 0.1 * k, "bad": -r}
                                           for k, (lab, r) in enumerate(ratings.items())}})
        first.append({"item": i, "ratings": ratings, "best": "A", "worst": "B", "reason": ""})
        second.append({"item": i, "ratings": {lab: 6 - r for lab, r in ratings.items()}})
    (tmp_path / "key.json").write_text(json.dumps({"items": items}), encoding="utf-8")
    (tmp_path / "answers.json").write_text(json.dumps(first), encoding="utf-8")
    (tmp_path / "answers-2.json").write_text(json.dumps(second), encoding="utf-8")
    out = preference.score([tmp_path])
    assert out["first_lines"] == 8
    assert out["scores"]["good"]["concordance"] == 1.0 and out["scores"]["bad"]["concordance"] == 0.0
    best = np.mean([max(a["ratings"].values()) for a in first])
    assert out["scores"]["good"]["rating_of_its_pick"] == pytest.approx(best, abs=1e-3)
    assert out["reader_agreement"]["concordance"] == 0.0  # the second reader reversed every rating


@pytest.fixture()
def judged_model(tiny_models, tmp_path):
    """A copy of the tiny word2vec model with a judge of sense fitted on two rated sheets."""
    import argparse
    import shutil

    from poetry_lstm.loading import load_model

    folder = tmp_path / "models" / "word2vec"
    shutil.copytree(tiny_models / "word2vec", folder)
    shutil.copy(tiny_models / "train_lines.u64", folder.parent / "train_lines.u64")
    model = load_model(folder)
    sheets = (["春风吹柳絮", "山水风月花", "明月照高楼"], ["白云生远岫", "孤舟明月夜", "秋风吹落叶"])
    for k, firsts in enumerate(sheets):
        rated_sheet(tmp_path / f"sheet{k}", model, firsts)
    preference.fit(argparse.Namespace(folders=[str(tmp_path / "sheet0"), str(tmp_path / "sheet1")], model=str(folder),
                                      c=1.0, check=[str(tmp_path / "sheet1")]))
    return folder


def test_fit_writes_a_judge_the_loader_reads_and_the_decoder_weighs(judged_model):
    from poetry_lstm.decoder import final_hidden
    from poetry_lstm.generate import complete_poem
    from poetry_lstm.loading import load_model

    record = json.loads((judged_model / "sense.json").read_text(encoding="utf-8"))
    assert record["first_lines"] == 6 and record["check"]["judge"]["concordance"] >= 0
    model = load_model(judged_model)
    assert model.sense is not None and model.sense.shape == (model.config["model_args"]["units"],)
    off = complete_poem(model, "山水风月花", n=1, seed=5, candidates=8).poems[0]
    on = complete_poem(model, "山水风月花", n=1, seed=5, candidates=8, sense=5.0).poems[0]
    assert off.sense == 0.0 and on.sense != 0.0
    # sampling keeps the state it ended in: the same as reading the finished poem again
    again = float(final_hidden(model.stepper, model.vocab, [on.text])[0] @ model.sense)
    assert on.sense == pytest.approx(again, abs=1e-3)
    beam = complete_poem(model, "山水风月花", n=1, seed=5, beam=4, sense=1.0).poems[0]
    assert beam.sense == pytest.approx(float(final_hidden(model.stepper, model.vocab, [beam.text])[0] @ model.sense),
                                       abs=1e-3)


def test_a_sense_weight_without_a_judge_says_what_to_run(tiny_models):
    from poetry_lstm.generate import complete_poem
    from poetry_lstm.loading import load_model

    poem = complete_poem(load_model(tiny_models / "word2vec"), "山水风月花", n=1, seed=0, sense=1.0).poems[0]
    note = next(n for n in poem.notes if n.kind == "no_sense")
    assert "bench/preference.py fit" in note.fields["command"] and poem.sense == 0.0


def test_a_judge_for_another_width_is_refused_with_the_command(judged_model):
    from poetry_lstm.errors import PoetryError
    from poetry_lstm.loading import load_model

    path = judged_model / "sense.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**record, "weights": record["weights"][:-1]}), encoding="utf-8")
    with pytest.raises(PoetryError, match="bench/preference.py fit"):
        load_model(judged_model)
