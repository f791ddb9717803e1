"""One network for both forms (`train --form both`): pretrained on 五绝 and 七绝 together, then a fine-tuned
copy written into each form's model folder, which the decoder reads as any other."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_config

from poetry_lstm import complete_poem
from poetry_lstm.cli import cli
from poetry_lstm.errors import PoetryError
from poetry_lstm.layout import FIVE, SEVEN
from poetry_lstm.loading import load_model
from poetry_lstm.modeldir import Vocab
from poetry_lstm.network import as_one_form, build_model
from poetry_lstm.stepper import LstmStepper


@pytest.fixture(scope="module")
def joint_models(tiny_root, tmp_path_factory):
    """Both forms' word2vec folders from one network: 2 pretraining epochs of 6 steps, 1 fine-tuning epoch."""
    from poetry_lstm.joint import train_joint

    models = tmp_path_factory.mktemp("joint") / "models"
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(models)).replace("train", epochs=2,
                                                                                  steps_per_epoch=6)
    lines = []
    outs = train_joint(cfg, "word2vec", command="poetry-lstm train --mode word2vec --form both", log=lines.append)
    return cfg, models, outs, lines


def test_both_forms_folders_share_the_vocabulary_and_load_for_poems(joint_models):
    cfg, models, outs, lines = joint_models
    assert outs == [models / "word2vec", models / "qijue" / "word2vec"]
    joint_vocab = Vocab.load(models / ".train-joint-word2vec" / "vocab.json")
    five, seven = (load_model(out) for out in outs)
    assert five.vocab == seven.vocab == joint_vocab  # the same tokens, in the same order
    # each folder counts its own form's characters and 叠字 places (4 in a five-character line, 6 in a seven)
    assert five.vocab.counts != seven.vocab.counts
    assert (len(five.vocab.doubles_at), len(seven.vocab.doubles_at)) == (4, 6)
    assert five.shape == FIVE and seven.shape == SEVEN
    for model, first in ((five, "白日依山尽"), (seven, "朝辞白帝彩云间")):
        assert "period_id" not in model.config["model_args"]  # the fixed place: the kind the stepper runs
        assert model.config["joint"]["forms"] == ["wujue", "qijue"]
        assert model.config["joint"]["vocabulary"] == len(joint_vocab)
        poem = complete_poem(model, first, n=1, seed=3).poems[0]
        assert model.shape.lines_of(poem.text)[0] == first and len(poem.text) == model.shape.slots
        assert (model.path / "vectors").is_dir() and (model.path / "overuse.json").exists()
        assert "one network for both forms" in (model.path / "card.md").read_text(encoding="utf-8")
    assert sum(bool(re.match(r"pretrain epoch \d+:", line)) for line in lines) == 2


def test_each_folder_keeps_its_own_column_of_the_joint_history(joint_models):
    _, models, outs, _ = joint_models
    joint = json.loads((models / ".train-joint-word2vec" / "state.json").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in joint["history"]] == [1, 2] and joint["phase"] == "forms"
    for out, form in zip(outs, ("wujue", "qijue")):
        history = json.loads((out / "history.json").read_text(encoding="utf-8"))
        pre = [r for r in history if r["phase"] == "pretrain"]
        assert [r["phase"] for r in history] == ["pretrain", "pretrain", "finetune"]
        for row, both in zip(pre, joint["history"]):
            assert row["val_perplexity"] == both[f"val_perplexity_{form}"]
            assert row["both_forms_val_loss"] == both["val_loss"]
        # the joint loss weighs the forms alike
        both = joint["history"][-1]
        assert both["val_loss"] == pytest.approx(
            (np.log(both["val_perplexity_wujue"]) + np.log(both["val_perplexity_qijue"])) / 2, abs=1e-3)
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        assert config["pretrain"]["epochs"] == 2 and config["test"]["perplexity"] > 1


def test_a_resumed_run_after_both_folders_are_written_trains_nothing(joint_models):
    from poetry_lstm.joint import train_joint

    cfg, models, outs, _ = joint_models
    before = [(out / "model.keras").stat().st_mtime_ns for out in outs]
    lines = []
    assert train_joint(cfg, "word2vec", resume=True, log=lines.append) == outs
    assert not any(re.match(r"(pretrain|finetune) epoch", line) for line in lines)
    assert sum("written from this run's best epoch already" in line for line in lines) == 2
    assert [(out / "model.keras").stat().st_mtime_ns for out in outs] == before
    # more epochs asked of a finished run: it says how to go on instead of training the forms over
    lines = []
    assert train_joint(cfg.replace("train", epochs=4), "word2vec", resume=True, log=lines.append) == outs
    said = [line for line in lines if line.startswith("pretraining ended after epoch 2")]
    assert said and f"--init-from {outs[0]} --init-from {outs[1]}" in said[0]
    assert [(out / "model.keras").stat().st_mtime_ns for out in outs] == before


def test_one_form_copy_predicts_as_the_network_for_both_forms():
    """Neither rhyme-context layer holds weights: the copy with the fixed place predicts what the network
    for both forms does on whole poems of its form, and the NumPy stepper runs it."""
    rng = np.random.default_rng(2)
    table = rng.normal(size=(40, 4)).astype(np.float32)
    args = {"vocab_size": 40, "mode": "onehot", "units": 8, "layers": 2, "dropout": 0.0, "embedding_dim": 8,
            "prosody_dim": 4, "rhyme_context": True, "period_id": 3}
    joint = build_model(**args, prosody=table)
    for shape in (FIVE, SEVEN):
        ids = rng.integers(5, 40, size=(2, 1 + shape.slots)).astype(np.int32)
        ids[:, 0] = 2
        for pos, mark in shape.marks.items():
            ids[:, 1 + pos] = 3 if mark == "。" else 4
        copy = as_one_form(joint, args, shape.chars)
        np.testing.assert_allclose(copy.predict(ids[:, :-1], verbose=0), joint.predict(ids[:, :-1], verbose=0),
                                   rtol=1e-5, atol=1e-6)
        LstmStepper(copy)  # the shipped kind
        with pytest.raises(ValueError, match="stepper runs the shipped kind only"):
            LstmStepper(joint)


def test_a_form_copy_carries_the_optimizer_on():
    """Adam's step count and moments pass from the network for both forms to a form's copy, as a single
    form's fine-tuning keeps its pretraining's."""
    import keras

    from poetry_lstm.joint import carry_optimizer

    rng = np.random.default_rng(3)
    table = rng.normal(size=(40, 4)).astype(np.float32)
    args = {"vocab_size": 40, "mode": "onehot", "units": 8, "layers": 2, "dropout": 0.0, "embedding_dim": 8,
            "prosody_dim": 4, "rhyme_context": True, "period_id": 3}
    joint = build_model(**args, prosody=table)
    joint.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    x = rng.integers(5, 40, size=(4, 24)).astype(np.int32)
    x[:, 12] = 3
    for _ in range(3):
        joint.train_on_batch(x, x)
    copy = build_model(**{k: v for k, v in args.items() if k != "period_id"}, prosody=table)
    copy.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    copy.set_weights(joint.get_weights())
    carry_optimizer(joint, copy)
    assert int(copy.optimizer.iterations.numpy()) == 3
    mine, theirs = copy.optimizer.variables, joint.optimizer.variables
    assert len(mine) == len(theirs) > 2
    for a, b in zip(mine, theirs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_both_forms_refuses_the_backward_scorer_and_endless_epochs(tiny_root, tmp_path):
    from poetry_lstm.joint import train_joint

    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(tmp_path / "models"))
    with pytest.raises(PoetryError, match="without --form both"):
        train_joint(cfg.replace("model", reverse=True), "word2vec", log=lambda _: None)
    with pytest.raises(PoetryError, match="steps_per_epoch above 0"):
        train_joint(cfg, "word2vec", log=lambda _: None)
    result = CliRunner().invoke(cli, ["--config", str(tiny_root / "config.toml"), "train", "--form", "both",
                                      "--backward"])
    assert result.exit_code != 0 and "without --form both" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "models").exists()


def test_a_fresh_run_starts_the_forms_over(tiny_root, tmp_path):
    """Without --resume, the forms' copies left by an earlier run are not reused: both folders hold the new
    run's weights and only its command."""
    from poetry_lstm.joint import train_joint

    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(tmp_path / "models")).replace(
        "train", epochs=1, steps_per_epoch=3, fine_tune_epochs=0, overuse_poems=0)
    weights = []
    for seed in (1, 2):
        outs = train_joint(cfg.replace("train", seed=seed), "onehot", command=f"run {seed}", log=lambda _: None)
        weights.append([load_model(out, keras=True).keras_model.get_weights() for out in outs])
        for out in outs:
            assert json.loads((out / "config.json").read_text(encoding="utf-8"))["commands"] == [f"run {seed}"]
    for first, second in zip(*weights):  # each form's folder: some trained weights differ
        assert any(not np.array_equal(a, b) for a, b in zip(first, second))


def test_a_broken_folder_names_the_command_that_made_it(joint_models, tmp_path):
    import shutil

    _, _, outs, _ = joint_models
    for out, form, parent in zip(outs, ("", " --form qijue"), ("models", "qijue")):
        copy = tmp_path / parent / out.name  # a 七绝 folder sits in a qijue folder, as in models/
        shutil.copytree(out, copy)
        (copy / "model.keras").unlink()
        with pytest.raises(PoetryError, match="train --mode word2vec --form both"):
            load_model(copy)
        (copy / "config.json").write_text("{", encoding="utf-8")  # unreadable: the form's usual command
        with pytest.raises(PoetryError, match=f"train --mode word2vec{form}`"):
            load_model(copy)


def test_a_warm_start_begins_from_the_mean_of_the_form_copies(joint_models, tmp_path):
    """`train --init-from A --init-from B`: a new run whose network starts from the mean of two model folders'
    weights (a shipped model trained further), whose folders name them and carry the commands that made them."""
    from poetry_lstm.joint import FORMS, form_data, train_joint
    from poetry_lstm.train import prepare_run

    cfg, _, outs, _ = joint_models
    cfg = cfg.replace("paths", models_dir=str(tmp_path / "models")).replace(
        "train", epochs=1, steps_per_epoch=2, fine_tune_epochs=0, overuse_poems=0)
    texts = [t for form in FORMS for t in form_data(cfg, form)[1]]
    run = prepare_run(cfg, "word2vec", "joint-word2vec", texts, None, False, False, "next", lambda _: None,
                      tuple(outs))
    copies = [load_model(out, keras=True).keras_model.get_weights() for out in outs]
    for mine, a, b in zip(run.model.get_weights(), *copies):
        np.testing.assert_allclose(mine, (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(*copies))  # the fine-tuned copies differ: a real mean
    # the frozen embedding is the sources' skip-gram vectors, which the run keeps beside its checkpoint
    assert (tmp_path / "models" / ".train-joint-word2vec" / "vectors" / "vectors.bin").exists()

    lines = []
    written = train_joint(cfg, "word2vec", command="poetry-lstm train --form both --init-from A --init-from B",
                          log=lines.append, init_from=tuple(outs))
    assert any("(their mean)" in line for line in lines)
    for out in written:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        assert [src["folder"] for src in config["init_from"]] == [str(o) for o in outs]
        assert config["commands"] == ["poetry-lstm train --mode word2vec --form both",
                                      "poetry-lstm train --form both --init-from A --init-from B"]
        card = (out / "card.md").read_text(encoding="utf-8")
        assert f"started from the weights of `{outs[0]}` and `{outs[1]}` (their mean)" in card
    state = json.loads((tmp_path / "models" / ".train-joint-word2vec" / "state.json").read_text(encoding="utf-8"))
    assert state["seed_offset"] == 2 and [r["epoch"] for r in state["history"]] == [1]


def test_init_from_refuses_a_folder_it_cannot_start_from(joint_models, tiny_root, tiny_models, tmp_path):
    _, _, outs, _ = joint_models
    toml = tmp_path / "config.toml"
    toml.write_text((tiny_root / "config.toml").read_text(encoding="utf-8").replace(
        str(tiny_root / "models"), str(tmp_path / "models")).replace("steps_per_epoch = 0", "steps_per_epoch = 2"),
        encoding="utf-8")
    cases = [(tiny_models / "word2vec", "another vocabulary"),  # the 五绝 alone: other characters
             (tmp_path, "not a model folder"),
             (outs[0], "other shapes")]  # with --units 16 below: fewer units than it has (more widen it)
    for folder, said in cases:
        extra = ["--units", "16"] if said == "other shapes" else []
        result = CliRunner().invoke(cli, ["--config", str(toml), "train", "--mode", "word2vec", "--form", "both",
                                          "--init-from", str(folder), *extra])
        assert result.exit_code == 1, result.output
        assert said in result.output and "Traceback" not in result.output
    assert not (tmp_path / "models" / "word2vec").exists()


def test_a_wider_run_begins_by_computing_exactly_what_its_source_did(joint_models, tmp_path):
    """`--init-from` a folder of 24 units a layer into a run of 40: the old units keep their weights, the new ones
    reach nothing yet, so the wider network predicts what the folder's does; a step later the new units count."""
    from poetry_lstm.joint import FORMS, form_data
    from poetry_lstm.network import poem_ids
    from poetry_lstm.train import prepare_run

    cfg, _, outs, _ = joint_models
    cfg = cfg.replace("paths", models_dir=str(tmp_path / "models")).replace("model", units=40)
    texts = [t for form in FORMS for t in form_data(cfg, form)[1]]
    lines = []
    run = prepare_run(cfg, "word2vec", "joint-word2vec", texts, None, False, False, "wider", lines.append, (outs[0],))
    source = load_model(outs[0], keras=True)
    assert source.config["model_args"]["units"] == 24 and run.model.get_layer("lstm_1").units == 40
    assert any("widened to 40 units a layer" in line for line in lines)
    ids = poem_ids(form_data(cfg, "wujue")[3]["valid"][:8], source.vocab)  # whole 五绝, <s> first
    np.testing.assert_allclose(run.model.predict(ids, verbose=0), source.keras_model.predict(ids, verbose=0),
                               rtol=1e-4, atol=1e-6)
    head = run.model.get_layer("next_char").get_weights()[0]  # (40, vocab)
    assert not head[24:].any()
    run.model.fit(ids[:, :-1], ids[:, 1:], batch_size=8, epochs=1, verbose=0)
    assert run.model.get_layer("next_char").get_weights()[0][24:].any()
