"""The 七绝 through training, the decoder and the faces: a tiny real seven-character model (`tiny_qijue`)
trained by `train(..., form="qijue")` beside the tiny 五绝 models."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import synthetic_poems

from poetry_lstm import layout, prosody
from poetry_lstm.cli import cli
from poetry_lstm.errors import InputError
from poetry_lstm.generate import acrostic_poem, complete_poem, place, theme_plan
from poetry_lstm.loading import load_model

# seven-character first lines: two that fit a form (仄起入韵 and 平起入韵 as poets name them) and one that fits none
FITTING = ("月落乌啼霜满天", "朝辞白帝彩云间")
BROKEN = "山水风月花春秋"


def run(tiny_root, *args):
    return CliRunner().invoke(cli, ["--config", str(tiny_root / "config.toml"), *map(str, args)])


def test_the_seven_shape_counts_its_32_slots():
    s = layout.SEVEN
    assert (s.slots, s.stride, s.line_starts, s.line_ends, s.line_two_end_step) == (32, 8, (0, 8, 16, 24),
                                                                                     (6, 14, 22, 30), 15)
    assert s.marks == {7: "，", 15: "。", 23: "，", 31: "。"}
    poem = "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"
    assert s.lines_of(poem)[3] == "轻舟已过万重山" and layout.shape_of_text(poem) is s
    assert s.reverse_poem(poem).startswith("山重万过已舟轻，") and s.reverse_poem(s.reverse_poem(poem)) == poem
    # the five-character names the rest of the code reads are FIVE's, unchanged
    assert (layout.SLOTS, layout.LINE_TWO_END_STEP, layout.MARKS) == (24, 11, {5: "，", 11: "。", 17: "，", 23: "。"})


def test_a_seven_line_keeps_its_tones_place_by_place():
    # a b line of seven: 仄仄平平平仄仄; place 2 must be 仄 and place 4 平 (二四六分明)
    assert prosody.allowed_tones("b", "", 1, chars=7) == {prosody.ZE}
    assert prosody.allowed_tones("b", "", 3, chars=7) == {prosody.PING}
    assert prosody.allowed_tones("b", "", 0, chars=7) == {prosody.PING, prosody.ZE}  # place 1 is free
    with pytest.raises(ValueError):
        prosody.allowed_tones("b", "", 5)  # a five has no sixth place
    # a theme keyword in a seven sits where seven-character lines put words, never on line 2's rhyme place
    for seed in range(20):
        start, text = place(np.random.default_rng(seed), "B", 1, "秋夜", "秋", chars=7)
        assert start + len(text) <= 6
    assert theme_plan([("秋夜", ["秋", "夜"])])[0] == ("秋夜", "秋夜", "秋")


def test_training_a_qijue_model_records_its_shape(tiny_qijue):
    config = json.loads((tiny_qijue / "config.json").read_text(encoding="utf-8"))
    assert tiny_qijue.parent.name == "qijue" and tiny_qijue.name == "word2vec"
    assert config["model_args"]["chars"] == 7 and config["window"] == config["stride"] == 32
    assert config["command"] == "poetry-lstm train --mode word2vec --form qijue"
    assert config["test"]["perplexity"] > 0 and config["test"]["baseline_perplexity"] > 0
    assert (tiny_qijue.parent / "train_lines.u64").exists()  # the 七绝 models' own copy check
    assert load_model(tiny_qijue).shape is layout.SEVEN


def test_the_numpy_stepper_equals_keras_on_seven_character_poems(tiny_qijue):
    trained = load_model(tiny_qijue, keras=True)
    assert trained.stepper.line_two_end == layout.SEVEN.line_two_end_step
    poems = synthetic_poems(3, seed=13, chars=7)
    ids = np.array([trained.vocab.encode(p) for p in poems], np.int32)  # (3, 33)
    full = np.log(trained.keras_model.predict(ids[:, :-1], verbose=0))  # (3, 32, vocab)
    state = trained.stepper.initial_state(3)
    for t in range(32):
        logp, state = trained.stepper.step(ids[:, t], state)
        np.testing.assert_allclose(logp, full[:, t], atol=1e-4)


def test_a_seven_character_first_line_gives_a_regulated_rhyming_qijue(tiny_qijue):
    trained = load_model(tiny_qijue)
    for line in (*FITTING, BROKEN):
        for seed in range(4):
            poem = complete_poem(trained, line, n=1, seed=seed).poems[0]
            lines = trained.shape.lines_of(poem.text)
            assert lines[0] == line and all(len(x) == 7 for x in lines) and poem.checks["form"]
            assert prosody.check_after_first(poem.text) and not poem.checks["copied"]
            assert poem.checks["tone"] == bool(prosody.forms_for_first_line(line))
            if not poem.warnings:  # a tiny vocabulary may lack every character of line 1's group
                assert poem.checks["rhyme"]
    assert complete_poem(trained, FITTING[0], seed=3).poems[0].text == complete_poem(trained, FITTING[0],
                                                                                     seed=3).poems[0].text


def test_a_qijue_is_named_as_poets_name_it(tiny_qijue):
    # 月落乌啼霜满天 is 仄仄平平仄仄平, a B line of seven: line 1 of the form a 五绝 calls 平起入韵
    poem = complete_poem(load_model(tiny_qijue), FITTING[0], n=1).poems[0]
    assert poem.form == "仄起入韵"


def test_an_acrostic_from_a_qijue_model_has_seven_character_lines(tiny_qijue):
    result = acrostic_poem(load_model(tiny_qijue), "春夏秋冬", n=2)
    for poem in result.poems:
        assert [line[0] for line in poem.lines] == list("春夏秋冬") and all(len(x) == 7 for x in poem.lines)
        assert prosody.check_after_first(poem.text) or poem.breaks


def test_a_line_of_the_other_length_is_refused_in_one_sentence(tiny_qijue, tiny_models):
    with pytest.raises(InputError) as seven:
        complete_poem(load_model(tiny_qijue), "床前明月光")
    with pytest.raises(InputError) as five:
        complete_poem(load_model(tiny_models / "word2vec"), "朝辞白帝彩云间")
    for exc in (seven, five):
        assert exc.value.kind == "form_mismatch" and "\n" not in str(exc.value)
    assert "qijue" in str(five.value)
    with pytest.raises(InputError, match="five or seven"):
        complete_poem(load_model(tiny_qijue), "朝辞白帝彩云")


def test_the_cli_picks_the_model_by_the_first_line(tiny_root, tiny_qijue):
    seven = run(tiny_root, "generate", FITTING[1], "--n", "1", "--json")
    assert seven.exit_code == 0, seven.output
    assert all(len(x) == 7 for x in json.loads(seven.output)["poems"][0]["lines"])
    five = run(tiny_root, "generate", "春眠不觉晓", "--n", "1", "--json")
    assert five.exit_code == 0 and all(len(x) == 5 for x in json.loads(five.output)["poems"][0]["lines"])
    forced = run(tiny_root, "generate", "--acrostic", "春夏秋冬", "--form", "qijue", "--n", "1", "--json")
    assert forced.exit_code == 0 and all(len(x) == 7 for x in json.loads(forced.output)["poems"][0]["lines"])
    wrong = run(tiny_root, "generate", "春眠不觉晓", "--form", "qijue")
    assert wrong.exit_code != 0 and "Traceback" not in wrong.output and "七绝" in wrong.output


def test_a_file_of_both_lengths_gets_both_forms(tiny_root, tiny_qijue, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text(f"{FITTING[0]}\n春眠不觉晓\n山水风月\n", encoding="utf-8")
    result = run(tiny_root, "generate", "--file", path, "--json", "--n", "1")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [len(r["poems"][0]["lines"][1]) if "poems" in r else None for r in rows] == [7, 5, None]
    assert "five or seven" in rows[2]["error"]


def test_without_a_qijue_model_the_cli_says_what_to_train(tmp_path, tiny_root, tiny_models):
    config = tmp_path / "config.toml"
    config.write_text((tiny_root / "config.toml").read_text(encoding="utf-8")
                      .replace(str(tiny_root / "models"), str(tmp_path / "models")), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "generate", FITTING[0]])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "poetry-lstm train --mode word2vec --form qijue" in result.output


def test_evaluate_form_qijue_scores_held_out_qijue(tiny_root, tiny_qijue):
    result = run(tiny_root, "evaluate", "--form", "qijue", "--mode", "word2vec", "--json", "--generate",
                 "--limit", "12")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["chars"] == 12 * 21 and out["baseline_perplexity"] > 0  # lines 2–4: 21 characters a poem
    defaults = out["generation"]["word2vec, defaults"]
    assert defaults["form"] == 1.0 and defaults["lines_2_4_regulated"] == 1.0 and defaults["copy_rate"] == 0.0
    assert defaults["judge_perplexity"] > 0


ZAOFA = "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"


def test_the_desk_repairs_and_rewrites_a_qijue_with_its_model(tiny_qijue, tiny_models):
    from poetry_lstm import checker
    from poetry_lstm.desk import check_poem, revise_line

    trained = load_model(tiny_qijue)
    broken = ZAOFA[:-2] + "水。"  # 水 is 仄: line 4 no longer rhymes
    report = check_poem(trained, broken)
    rhyme = next(p for p in report.problems if (p.line, p.char) == (4, 7))
    assert rhyme.suggestions
    for ch in rhyme.suggestions:  # each repairs the rhyme and brings no error
        assert not [q for q in checker.check(broken[:-2] + ch + "。").errors() if (q.line, q.char) == (4, 7)]
    assert not check_poem(load_model(tiny_models / "word2vec"), broken).problems[-1].suggestions  # a 五绝 model
    revision = revise_line(trained, ZAOFA, 3, n=2, seed=1)
    kept = trained.shape.lines_of(ZAOFA)
    for poem in revision.poems:
        assert [poem.lines[i] for i in (0, 1, 3)] == [kept[i] for i in (0, 1, 3)] and len(poem.lines[2]) == 7
    assert revision.form == "平起入韵"  # 朝辞白帝彩云间 is 平平仄仄仄平平: 平起 as a 七绝 is named
    with pytest.raises(InputError) as wrong:
        revise_line(load_model(tiny_models / "word2vec"), ZAOFA, 3)
    assert wrong.value.kind == "revise_form" and "--form qijue" in str(wrong.value)


def test_the_cli_desk_reads_each_poem_with_its_forms_model(tiny_root, tiny_qijue, tmp_path):
    result = run(tiny_root, "revise", ZAOFA, "--line", "3", "--n", "1", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["poems"][0]["lines"][2]) == 7
    path = tmp_path / "poems.txt"
    path.write_text(f"{ZAOFA[:-2]}水。\n白日依山尽，黄河入海流。欲穷千里目，更上一层天。\n", encoding="utf-8")
    rows = [json.loads(x) for x in run(tiny_root, "check", "--file", path, "--json").stdout.splitlines()]
    assert [r["kind"] for r in rows] == ["七绝", "五绝"]
    assert all(any(p["suggestions"] for p in r["problems"]) for r in rows)  # each ranked by its own model


def test_revising_a_qijue_without_its_model_names_the_command(tmp_path, tiny_root, tiny_models):
    config = tmp_path / "config.toml"
    config.write_text((tiny_root / "config.toml").read_text(encoding="utf-8")
                      .replace(str(tiny_root / "models"), str(tmp_path / "models")), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "revise", ZAOFA, "--line", "2"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "poetry-lstm train --mode word2vec --form qijue" in result.output


def test_with_char_puts_a_repair_at_a_qijue_s_place():
    from poetry_lstm import page

    assert page.with_char(ZAOFA, 2, 1, "万") == ZAOFA.replace("千里江陵", "万里江陵")
    assert page.with_char(ZAOFA, 4, 7, "天") == ZAOFA[:-2] + "天。"
    assert page.with_char(ZAOFA, 3, 7, "驻").split("，")[1].startswith("千") and "住" not in page.with_char(
        ZAOFA, 3, 7, "驻")


def test_a_mixed_file_without_a_qijue_model_still_finishes_its_five_character_lines(tmp_path, tiny_root, tiny_models):
    config = tmp_path / "config.toml"
    models = tmp_path / "models"
    for name in ("word2vec", "train_lines.u64"):
        (shutil.copytree if name == "word2vec" else shutil.copyfile)(tiny_models / name, models / name)
    config.write_text((tiny_root / "config.toml").read_text(encoding="utf-8")
                      .replace(str(tiny_root / "models"), str(models)), encoding="utf-8")
    path = tmp_path / "lines.txt"
    path.write_text(f"春眠不觉晓\n{FITTING[0]}\n白日依山尽\n{FITTING[1]}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "generate", "--file", str(path), "--json", "--n", "1"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert ["poems" in r for r in rows] == [True, False, True, False]
    assert all("--form qijue" in r["error"] for r in rows if "error" in r)


def test_evaluate_reads_a_file_of_qijue_and_refuses_the_other_length(tiny_root, tiny_qijue, tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("\n".join(synthetic_poems(6, seed=21, chars=7)) + "\n", encoding="utf-8")
    bad.write_text("\n".join(synthetic_poems(6, seed=21)) + "\n", encoding="utf-8")
    result = run(tiny_root, "evaluate", "--form", "qijue", "--mode", "word2vec", "--file", good, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["chars"] == 6 * 21
    refused = run(tiny_root, "evaluate", "--form", "qijue", "--mode", "word2vec", "--file", bad)
    assert refused.exit_code != 0 and "Traceback" not in refused.output and "朝辞白帝彩云间" in refused.output


def test_a_theme_and_a_beam_and_line_search_write_qijue(tiny_qijue, tiny_root):
    from poetry_lstm.generate import theme_poem
    from poetry_lstm.vectors import load_vectors_fast

    trained = load_model(tiny_qijue)
    result = theme_poem(trained, "江南春日的山水", load_vectors_fast(tiny_qijue / "vectors"), n=2)
    assert result.poems and all(len(x) == 7 for p in result.poems for x in p.lines)
    for overrides in ({"beam": 4}, {"line_search": True, "candidates": 4}):
        poem = complete_poem(trained, FITTING[0], n=1, seed=2, **overrides).poems[0]
        assert poem.lines[0] == FITTING[0] and all(len(x) == 7 for x in poem.lines)
        assert prosody.check_after_first(poem.text) and not poem.checks["copied"]
    # a keyword's two characters may begin at places 1, 3, 5 or 6 of a seven (line 1), 1, 3 or 5 of lines 2–4
    starts = {place(np.random.default_rng(s), None, 1, "秋夜", "秋", chars=7)[0] for s in range(40)}
    assert starts == {0, 2, 4}
    assert {place(np.random.default_rng(s), None, 0, "秋夜", "秋", chars=7)[0] for s in range(40)} == {0, 2, 4, 5}


def test_a_backward_qijue_model_scores_line_one(tiny_root, tiny_qijue):
    from conftest import tiny_config

    from poetry_lstm.train import train

    folder = train(tiny_config(tiny_root).replace("model", reverse=True), "word2vec", form="qijue",
                   command="poetry-lstm train --mode word2vec --backward --form qijue", log=lambda _: None)
    assert folder == tiny_qijue.parent / "backward"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["model_args"]["chars"] == 7 and not config["model_args"]["rhyme_context"]
    trained = load_model(tiny_qijue)
    poems = complete_poem(trained, FITTING[0], n=2, mutual=1.0).poems
    assert all(p.line_one < 0 and len(p.lines[3]) == 7 for p in poems)  # the backward scorer read line 1
    assert not [n for p in poems for n in p.notes if n.kind == "no_backward"]


def test_calibrate_form_qijue_measures_the_qijue_model(tiny_root, tiny_qijue):
    result = run(tiny_root, "calibrate", "--form", "qijue", "--mode", "word2vec", "--overuse-poems", "5")
    assert result.exit_code == 0, result.output
    assert str(tiny_qijue / "overuse.json") in result.output
    assert json.loads((tiny_qijue / "overuse.json").read_text(encoding="utf-8"))["first_lines"] == 5


def test_a_model_folder_that_contradicts_its_line_length_is_refused(tiny_qijue, tiny_models, tmp_path):
    from poetry_lstm.errors import PoetryError

    assert "chars" not in json.loads((tiny_models / "word2vec" / "config.json").read_text(encoding="utf-8"))[
        "model_args"]  # a 五绝 model's args are as they always were: its checkpoints resume
    for chars in (5, 9):
        copy = tmp_path / f"c{chars}" / "qijue" / "word2vec"
        shutil.copytree(tiny_qijue, copy)
        config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
        config["model_args"]["chars"] = chars
        (copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
        with pytest.raises(PoetryError) as exc:
            load_model(copy)
        assert exc.value.kind == "model_corrupt" and "--form qijue" in str(exc.value)
