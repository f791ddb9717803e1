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


def synthetic_poems(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    line = lambda: "".join(rng.choice(CHARS) for _ in range(5))
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
    cfg = cfg.replace("paths", crawler_dir=str(root / "crawler"), corpus_dir=str(root / "corpus"), models_dir=str(root / "models"))
    cfg = cfg.replace("clean", valid_share=0.1, test_share=0.1)
    cfg = cfg.replace("vectors", vector_size=16, epochs=3)
    cfg = cfg.replace("model", units=24, embedding_dim=16, min_char_count=1)
    return cfg.replace("train", epochs=3, batch_size=16, patience=5)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """A folder with crawler/, corpus/ (cleaned from 300 synthetic poems) and config.toml."""
    from poetry_lstm.clean import clean_corpus

    root = tmp_path_factory.mktemp("tiny")
    write_raw(root / "crawler", synthetic_poems(300))
    cfg = tiny_config(root)
    clean_corpus(cfg)
    (root / "config.toml").write_text(
        f'[paths]\ncrawler_dir = "{root / "crawler"}"\ncorpus_dir = "{root / "corpus"}"\nmodels_dir = "{root / "models"}"\n'
        "[clean]\nvalid_share = 0.1\ntest_share = 0.1\n[vectors]\nvector_size = 16\nepochs = 3\n"
        "[model]\nunits = 24\nembedding_dim = 16\nmin_char_count = 1\n[train]\nepochs = 3\nbatch_size = 16\npatience = 5\n",
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
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is absent beside the project root")
    return SHARED
