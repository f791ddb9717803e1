"""Shared fixtures: a tiny corpus made by the real cleaner, and tiny real models of both modes.

The poems are synthetic (random common characters in the right shape), so the tests ship no one
else's texts; training them takes seconds and still moves the loss.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests import local_server

# Common characters with known 平水韵 readings, a few per rhyme group, so constrained decoding has room.
CHARS = ("山水风月花春秋天云人家江南北东西来去归飞流长明清寒高深远空中上下前后日夜年时心声光"
         "雨雪霜林草木鸟鱼舟桥城楼门窗灯酒诗歌书石松竹梅柳烟霞红白青黄金玉千万孤独一两三多少新旧"
         "行坐看听思望见闻生老病死忧愁乐笑泪别逢知问何无有不可相自古今朝暮晚早暖冷香落开满照过尽")


def synthetic_poems(n: int, seed: int = 7, chars: int = 5) -> list[str]:
    rng = random.Random(seed)
    line = lambda: "".join(rng.choice(CHARS) for _ in range(chars))
    return [f"{line()}，{line()}。{line()}，{line()}。" for _ in range(n)]


def write_raw(crawler_dir: Path, poems: list[str], extra: list[dict] = ()) -> Path:
    raw = crawler_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / "chinese-poetry.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(poems):
            f.write(json.dumps({"source": "chinese-poetry", "source_id": f"p{i}", "dynasty": "唐", "author": "无名",
                                "title": f"诗{i}", "text": text}, ensure_ascii=False) + "\n")
        for row in extra:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def tiny_config(root: Path):
    from poetry_lstm.config import load_config

    cfg = load_config()
    cfg = cfg.replace("paths", crawler_dir=str(root / "crawler"), corpus_dir=str(root / "corpus"),
                      models_dir=str(root / "models"))
    cfg = cfg.replace("clean", valid_share=0.1, test_share=0.1)
    cfg = cfg.replace("vectors", vector_size=16, epochs=3, workers=1)
    cfg = cfg.replace("model", units=24, embedding_dim=16, min_char_count=1)
    return cfg.replace("train", epochs=3, batch_size=16, patience=5, steps_per_epoch=0, fine_tune_epochs=1,
                       overuse_poems=30)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """A folder with crawler/, corpus/ (cleaned from 300 synthetic poems, and corpus/qijue/ from 300
    synthetic 七绝) and config.toml."""
    from poetry_lstm.clean import clean_corpus

    root = tmp_path_factory.mktemp("tiny")
    write_raw(root / "crawler", synthetic_poems(300) + synthetic_poems(300, seed=8, chars=7))
    cfg = tiny_config(root)
    clean_corpus(cfg)
    (root / "config.toml").write_text(
        f'[paths]\ncrawler_dir = "{root / "crawler"}"\ncorpus_dir = "{root / "corpus"}"\n'
        f'models_dir = "{root / "models"}"\n'
        "[clean]\nvalid_share = 0.1\ntest_share = 0.1\n[vectors]\nvector_size = 16\nepochs = 3\nworkers = 1\n"
        "[model]\nunits = 24\nembedding_dim = 16\nmin_char_count = 1\n"
        "[train]\nepochs = 3\nbatch_size = 16\npatience = 5\nsteps_per_epoch = 0\nfine_tune_epochs = 1\n"
        "overuse_poems = 30\n",
        encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_models(tiny_root):
    """models/word2vec and models/onehot trained for 3 epochs on the tiny corpus."""
    from poetry_lstm.train import train

    cfg = tiny_config(tiny_root)
    for mode in ("word2vec", "onehot"):
        train(cfg, mode, command=f"poetry-lstm train --mode {mode}", log=lambda _: None)
    return tiny_root / "models"


@pytest.fixture(scope="session")
def tiny_qijue(tiny_root, tiny_models):
    """models/qijue/word2vec: a 七绝 model trained for 3 epochs on the tiny seven-character corpus, beside
    the 五绝 models."""
    from poetry_lstm.train import train

    return train(tiny_config(tiny_root), "word2vec", form="qijue",
                 command="poetry-lstm train --mode word2vec --form qijue", log=lambda _: None)


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is absent beside the project root")
    return SHARED


@pytest.fixture(scope="session")
def famous_corpus(tmp_path_factory) -> Path:
    """corpus/quatrains.jsonl made by the real cleaner from 15 famous 五绝 (public domain, in the
    traditional characters the data set stores), a 五律 and a 七绝; every real 五绝 lands in the
    test split. Small enough for CI, which never has the real corpus/."""
    from poetry_lstm.clean import clean_corpus

    quatrains = [  # (title, text): 7 keep the tone patterns, 8 rhyme on 平声 (the other 7 rhyme on 仄声)
        ("登鹳雀楼", "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"),
        ("静夜思", "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"),
        ("江雪", "千山鳥飛絕，萬徑人蹤滅。孤舟蓑笠翁，獨釣寒江雪。"),
        ("相思", "紅豆生南國，春來發幾枝。願君多採擷，此物最相思。"),
        ("春晓", "春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。"),
        ("鹿柴", "空山不見人，但聞人語響。返景入深林，復照青苔上。"),
        ("梅花", "牆角數枝梅，凌寒獨自開。遙知不是雪，爲有暗香來。"),
        ("竹里馆", "獨坐幽篁裏，彈琴復長嘯。深林人不知，明月來相照。"),
        ("寻隐者不遇", "松下問童子，言師採藥去。只在此山中，雲深不知處。"),
        ("登乐游原", "向晚意不適，驅車登古原。夕陽無限好，只是近黃昏。"),
        ("悯农", "鋤禾日當午，汗滴禾下土。誰知盤中餐，粒粒皆辛苦。"),
        ("八阵图", "功蓋三分國，名成八陣圖。江流石不轉，遺恨失吞吳。"),
        ("送灵澈上人", "蒼蒼竹林寺，杳杳鐘聲晚。荷笠帶斜陽，青山獨歸遠。"),
        ("宿建德江", "移舟泊煙渚，日暮客愁新。野曠天低樹，江清月近人。"),
        ("问刘十九", "綠蟻新醅酒，紅泥小火爐。晚來天欲雪，能飲一杯無。"),
    ]
    others = [("春望", "國破山河在，城春草木深。感時花濺淚，恨別鳥驚心。"
                       "烽火連三月，家書抵萬金。白頭搔更短，渾欲不勝簪。"),
              ("出塞", "秦時明月漢時關，萬里長征人未還。但使龍城飛將在，不教胡馬度陰山。")]
    root = tmp_path_factory.mktemp("famous")
    rows = [{"source": "chinese-poetry", "source_id": f"f{i}", "dynasty": "唐", "author": "", "title": title,
             "text": text}
            for i, (title, text) in enumerate(quatrains + others)]
    write_raw(root / "crawler", [], extra=rows)
    cfg = tiny_config(root).replace("clean", valid_share=0.0, test_share=1.0)
    clean_corpus(cfg)
    return root / "corpus" / "quatrains.jsonl"


def rated_sheet(folder: Path, model, first_lines: list[str], split: str = "train") -> None:
    """A sheet as `bench/preference.py sheet` writes it (of `split` first lines), rated by a rule a model or a judge
    can learn: more 山 rates higher."""
    from poetry_lstm.generate import complete_poem

    items, answers = [], []
    for i, first in enumerate(first_lines, 1):
        poems = [p.text for p in complete_poem(model, first, n=6, candidates=1, seed=i).poems]
        labels = "ABCDEF"[:len(poems)]
        items.append({"item": i, "first_line": first, "poems": {lab: {"poem": p} for lab, p in zip(labels, poems)}})
        answers.append({"item": i, "ratings": {lab: 1 + min(p[6:].count("山"), 4) for lab, p in zip(labels, poems)}})
    folder.mkdir(parents=True)
    (folder / "key.json").write_text(json.dumps({"split": split, "items": items}, ensure_ascii=False), "utf-8")
    (folder / "answers.json").write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
