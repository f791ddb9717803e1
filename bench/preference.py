"""Which score predicts what a reader prefers among our own poems? Readings of candidates from one first line.

    python bench/preference.py sheet --split valid --seed 20261303 --out docs/readings/NAME \
        --judge /work/runs/r18/w768-models/word2vec --judge models/onehot
    python bench/preference.py score docs/readings/NAME [docs/readings/OTHER ...]
    python bench/preference.py sheet --split train --seed S --lines 16 --out docs/readings/ratings/NAME
    python bench/preference.py fit docs/readings/ratings/* --model models/word2vec --check docs/readings/NAME

Every choice the decoder makes among candidates is by a score: the model's own log-probability, the frequency
penalty, the coherence with line 1, the backward model, a critic. Versus readings test one such score at a time,
30 pairs a sheet. This reading asks the question once for all of them: `sheet` completes 20 held-out first lines
six times each at the defaults, one candidate an answer (`candidates=1`, so no score has chosen them yet), shows the
six poems of a first line together (A–F, in random order), and asks the reader to rate each 1–5 and name the best
and the worst. `key.json` keeps, for every poem, each score the decoder has or could have:

- `model`: the model's mean log p of the characters it wrote; `rank`: what the decoder maximises (`model`, less the
  frequency and over-use penalties, plus `coherence`); `coherence`: lines 2–4's cosine to line 1;
- `backward`: mean log p(line 1 | lines 2–4) by models/backward; `critic` (`--critic`): a critic's log-odds of real;
- `ngram`: a character 4-gram's mean log p of lines 2–4 (Kneser–Ney on every training line);
- `judge:<folder>`: the mean log p of lines 2–4 under another model (`--judge`: a bigger network, the onehot one);
- `attested_tails` / `attested_heads`: lines 2–4 whose last three (first two) characters open or close a training
  line in that place; `unseen_pairs`: minus the neighbouring characters in lines 2–4 never next to each other there.

`score` reads `answers.json` beside each key and prints, for each score, how often it orders two poems of one first
line as the reader does (concordance; 0.5 = no better than chance, with a 95% interval over first lines by
bootstrap), and the mean rating of the poem it would pick against the mean of all six. Given two readers of one
sheet (`answers-2.json`), it prints how often they agree in the same way: the ceiling any score can reach.

`fit` learns a judge of sense from rated sheets (drawn from training first lines, so valid ones stay for measuring):
a pairwise logistic regression of the ratings on the model's mean log p and its last hidden state, written to
`sense.json` in the model folder, where `[generate] sense` weighs it into the decoder's choice (docs/tuning.md
round 19).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blind_reading import commit, held_out, model_of, models_name, settings_from, show  # noqa: E402

from poetry_lstm.prefer import read_sheet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LABELS = "ABCDEF"

HEAD = """# Blind reading: six poems from one first line

Each item shows six 五言绝句 (A–F) that share their first line. All six were written by a program from that line.
For each item, rate every poem 1–5 (5 = reads like a good real poem: it makes sense, its images meet, it goes
somewhere from its first line), name the best and the worst, and give a short reason for each.

Answer in `answers.json` as a list:
`[{"item": 1, "ratings": {"A": 2, "B": 1, "C": 3, "D": 2, "E": 1, "F": 2}, "best": "C", "worst": "E",
"reason": "..."}, ...]`.

"""


def forward_logp(model, poems: list[str]) -> np.ndarray:
    """(poems,) mean log p of lines 2–4's characters under `model`, teacher-forced."""
    sh, stepper = model.shape, model.stepper
    ids = np.array([model.vocab.encode(p) for p in poems])  # (batch, 1 + slots)
    wanted = {s for line in range(1, sh.lines) for s in sh.line_slots(line)}
    state, total = stepper.initial_state(len(poems)), np.zeros(len(poems))
    for t in range(sh.slots):  # input t predicts slot t
        logp, state = stepper.step(ids[:, t], state, logits=t in wanted)
        if t in wanted:
            total += logp[np.arange(len(poems)), ids[:, t + 1]]
    return total / len(wanted)


def backward_logp(model, poems: list[str]) -> np.ndarray:
    """(poems,) mean log p(line 1 | lines 2–4) under the backward scorer beside `model`."""
    from poetry_lstm.config import DecodeSettings
    from poetry_lstm.decoder import Candidate, Decoder

    settings = dataclasses.replace(DecodeSettings.defaults(model.settings_key), mutual=1.0)
    dec, cands = Decoder(model, settings), [Candidate(list(p), {}, None, None) for p in poems]
    dec.score_line_one(cands)
    return np.array([c.line_one for c in cands])


class LineFacts:
    """What the training lines say about a written line: its 4-gram log p, attested heads, tails and pairs."""

    def __init__(self):
        from poetry_lstm.clean import load_corpus
        from poetry_lstm.config import load_config
        from poetry_lstm.judge import fit_judge, training_lines

        lines = training_lines(load_corpus(load_config()))
        self.judge = fit_judge(lines)
        self.heads = {ln[:2] for ln in lines}
        self.tails = {ln[2:] for ln in lines}
        self.pairs = {ln[i:i + 2] for ln in lines for i in range(4)}

    def of(self, poem: str) -> dict:
        written = [ln[:5] for ln in show(poem).split("\n")[1:]]  # lines 2–4, without their marks
        return {"ngram": float(self.judge.text_log_probs(written).mean()),
                "attested_heads": sum(ln[:2] in self.heads for ln in written),
                "attested_tails": sum(ln[2:] in self.tails for ln in written),
                "unseen_pairs": -sum(ln[i:i + 2] not in self.pairs for ln in written for i in range(4))}


def make_sheet(args) -> None:
    from poetry_lstm.critic import load_numpy_critic
    from poetry_lstm.generate import complete_poem
    from poetry_lstm.loading import load_model

    model = model_of(args.models, args)
    settings = settings_from(model, ["candidates=1"] + (args.set or []))
    rng = random.Random(args.seed)
    firsts = [p[:model.shape.chars] for p in rng.sample(held_out(args.split), args.lines)]
    judges = {f"{Path(f).parent.name}/{Path(f).name}": load_model(f, overuse=False, line_hashes=False, backward=False)
              for f in args.judge or []}
    critic = load_numpy_critic(args.critic) if args.critic else None
    facts, items, lines = LineFacts(), [], [HEAD]
    for i, first in enumerate(firsts):
        poems = [p.__dict__ for p in complete_poem(model, first, settings, n=len(LABELS), seed=args.seed + i).poems]
        texts = [p["text"] for p in poems]
        scores = {"model": [p["score"] for p in poems], "rank": [p["rank"] for p in poems],
                  "coherence": [p["coherence"] for p in poems], "backward": backward_logp(model, texts).tolist()}
        if critic is not None:
            scores["critic"] = critic.logit_real(texts).tolist()
        for name, judge in judges.items():
            scores[f"judge:{name}"] = forward_logp(judge, texts).tolist()
        known = [facts.of(t) for t in texts]
        scores.update({key: [k[key] for k in known] for key in known[0]})
        order = list(range(len(texts)))
        rng.shuffle(order)
        shown = {LABELS[k]: {"poem": texts[j], **{s: round(v[j], 4) for s, v in scores.items()}}
                 for k, j in enumerate(order)}
        items.append({"item": i + 1, "first_line": first, "poems": shown})
        lines.append(f"## {i + 1}\n\n" + "\n\n".join(f"{lab}\n\n{show(p['poem'])}" for lab, p in shown.items()) + "\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = {"kind": "preference", "split": args.split, "seed": args.seed, "model": args.mode, "commit": commit(),
           "models": models_name(args.models), "settings": dataclasses.asdict(settings),
           "command": "python bench/preference.py " + " ".join(sys.argv[1:]), "items": items}
    (out / "sheet.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {out / 'sheet.md'} (for the reader) and {out / 'key.json'}: {len(items)} first lines")


def concordance(items: list[tuple[dict, dict]], value) -> tuple[float, int]:
    """(share of poem pairs rated apart that `value` orders as the ratings do, ties half; how many pairs)."""
    agree = total = 0.0
    for poems, ratings in items:
        labels = [lab for lab in poems if lab in ratings]
        for a in labels:
            for b in labels:
                if ratings[a] > ratings[b]:
                    va, vb = value(poems, a), value(poems, b)
                    agree += 1.0 if va > vb else 0.5 if va == vb else 0.0
                    total += 1
    return (agree / total if total else float("nan")), int(total)


def rating_of_pick(items: list[tuple[dict, dict]], value) -> float:
    """The mean rating of the poem `value` puts first among each first line's: what choosing by it would give."""
    return float(np.mean([ratings[max(ratings, key=lambda lab: value(poems, lab))] for poems, ratings in items]))


def bootstrap(items, value, draws: int = 1000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    shares = [concordance([items[k] for k in rng.integers(0, len(items), len(items))], value)[0]
              for _ in range(draws)]
    return [round(float(np.nanpercentile(shares, 2.5)), 3), round(float(np.nanpercentile(shares, 97.5)), 3)]


def score(folders: list[Path]) -> dict:
    items = [pair for f in folders for pair in read_sheet(f)]
    # the scores every sheet kept (a sheet drawn without --judge or --critic has fewer)
    names = sorted(set.intersection(*({s for p in poems.values() for s in p} for poems, _ in items)) - {"poem"})
    out = {"first_lines": len(items),
           "mean_rating": round(float(np.mean([r for _, rs in items for r in rs.values()])), 3), "scores": {}}
    for name in names:
        value = lambda poems, lab, name=name: poems[lab][name]  # noqa: E731
        share, pairs = concordance(items, value)
        out["scores"][name] = {"concordance": round(share, 3), "concordance_95": bootstrap(items, value),
                               "pairs": pairs, "rating_of_its_pick": round(rating_of_pick(items, value), 3)}
    twice = [f for f in folders if (f / "answers-2.json").exists()]
    if twice:  # a second reader of the same sheet: the first reader's ratings as a score of the second's
        both = [({lab: {"r": r} for lab, r in r1.items()}, r2) for f in twice
                for (_, r1), (_, r2) in zip(read_sheet(f), read_sheet(f, "answers-2.json"))]
        first = lambda poems, lab: poems[lab]["r"]  # noqa: E731
        share, pairs = concordance(both, first)
        strict = sum(1 for poems, r2 in both for a in r2 for b in r2
                     if r2[a] > r2[b] and poems[a]["r"] > poems[b]["r"])
        rated_apart = sum(1 for poems, r2 in both for a in r2 for b in r2
                          if r2[a] > r2[b] and poems[a]["r"] != poems[b]["r"])
        out["reader_agreement"] = {"concordance": round(share, 3), "concordance_95": bootstrap(both, first),
                                   "pairs": pairs, "where_both_rate_apart": round(strict / max(rated_apart, 1), 3),
                                   "pairs_both_rate_apart": rated_apart}
    return out


def rated_features(model, folders: list[Path]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(sheet, features (poems, 1 + units): mean log p and the last hidden state, ratings (poems,)) per first line."""
    from poetry_lstm.decoder import final_hidden

    sets = []
    for k, folder in enumerate(folders):
        for poems, ratings in read_sheet(folder):
            texts = [poems[lab]["poem"] for lab in ratings]
            hidden = final_hidden(model.stepper, model.vocab, texts)  # (poems, units)
            sets.append((k, np.hstack([forward_logp(model, texts)[:, None], hidden]),
                         np.array(list(ratings.values()), float)))
    return sets


def judge_weights(sets, c: float) -> np.ndarray:
    """(1 + units,) a pairwise logistic regression: P(reader rates a over b) = σ(w · (x_a − x_b))."""
    from sklearn.linear_model import LogisticRegression

    diffs = [feats[a] - feats[b] for _, feats, r in sets for a in range(len(r)) for b in range(len(r)) if r[a] > r[b]]
    x = np.array(diffs + [-d for d in diffs])
    y = np.r_[np.ones(len(diffs)), np.zeros(len(diffs))]
    scale = x.std(axis=0) + 1e-6  # standardised, so one C regularises log p and every unit alike
    return LogisticRegression(fit_intercept=False, C=c, max_iter=2000).fit(x / scale, y).coef_[0] / scale


def judged(sets, weights: np.ndarray) -> dict:
    """How the judge and the model's own log p order the reader's ratings, and the rating of what each picks."""
    items = [({str(j): {"judge": float(f[j] @ weights), "logp": float(f[j, 0])} for j in range(len(r))},
              {str(j): r[j] for j in range(len(r))}) for _, f, r in sets]
    out = {}
    for name in ("judge", "logp"):
        value = lambda poems, lab, name=name: poems[lab][name]  # noqa: E731
        out[name] = {"concordance": round(concordance(items, value)[0], 3),
                     "rating_of_its_pick": round(rating_of_pick(items, value), 3)}
    return out


def fit(args) -> None:
    """Fit the judge of sense on the rated sheets and write it beside the model (`sense.json`), with what it scores
    on each sheet when left out of the fit, and on the `--check` sheets (other first lines), against log p alone."""
    from poetry_lstm import files
    from poetry_lstm.loading import load_model
    from poetry_lstm.modeldir import SENSE_FILE

    model = load_model(args.model, overuse=False, line_hashes=False, backward=False)
    folders = [Path(f) for f in args.folders if (Path(f) / "answers.json").exists()]
    sets = rated_features(model, folders)
    left_out = [(k, judged([s for s in sets if s[0] == k], judge_weights([s for s in sets if s[0] != k], args.c)))
                for k in range(len(folders))]
    pooled = {name: {key: round(float(np.mean([r[name][key] for _, r in left_out])), 3)
                     for key in ("concordance", "rating_of_its_pick")} for name in ("judge", "logp")}
    weights = judge_weights(sets, args.c)
    record = {"weights": [round(float(w), 6) for w in weights[1:] / weights[0]],
              "what": "rank += sense × (weights · the last LSTM layer's hidden state after the whole poem); the "
                      "weights are the judge's, divided by its weight on the mean log p, so they are in its units",
              "logp_weight": round(float(weights[0]), 6), "c": args.c, "sheets": [str(f) for f in folders],
              "first_lines": len(sets), "poems": int(sum(len(r) for _, _, r in sets)),
              "left_out_mean_over_sheets": pooled,
              "command": "python bench/preference.py " + " ".join(sys.argv[1:])}
    if args.check:
        checked = rated_features(model, [Path(f) for f in args.check])
        record["check"] = {"sheets": args.check, **judged(checked, weights)}
    files.write_json(Path(args.model) / SENSE_FILE, record)
    print(json.dumps({k: v for k, v in record.items() if k != "weights"}, ensure_ascii=False, indent=1))


def main() -> None:
    from poetry_lstm.stepper import limit_blas_threads

    limit_blas_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sheet")
    p.add_argument("--split", choices=["train", "valid", "test"], default="valid",
                   help="train: first lines of training 五绝, for ratings a judge learns from")
    p.add_argument("--seed", type=int, required=True, help="a fresh seed for every reading")
    p.add_argument("--lines", type=int, default=20, help="first lines on the sheet, six poems each")
    p.add_argument("--mode", default="word2vec")
    p.add_argument("--form", default="wujue", choices=["wujue"])
    p.add_argument("--models", default=str(ROOT / "models"))
    p.add_argument("--set", action="append", help="a decoder setting other than the default, key=value")
    p.add_argument("--judge", action="append", help="another model folder (models/onehot, a bigger network's) that "
                   "scores each poem")
    p.add_argument("--critic", default="", help="a measuring critic's folder (python bench/critic.py train), or none")
    p.add_argument("--out", required=True)
    s = sub.add_parser("score")
    s.add_argument("folders", nargs="+")
    f = sub.add_parser("fit", help="fit the judge of sense on rated sheets into MODEL/sense.json")
    f.add_argument("folders", nargs="+", help="rated sheets (key.json and answers.json)")
    f.add_argument("--model", default=str(ROOT / "models" / "word2vec"))
    f.add_argument("--c", type=float, default=0.0003, help="inverse L2 strength on standardised features")
    f.add_argument("--check", nargs="*", default=[], help="rated sheets of other first lines, scored, not fitted")
    args = parser.parse_args()
    if args.command == "fit":
        fit(args)
    elif args.command == "score":
        print(json.dumps(score([Path(f) for f in args.folders]), ensure_ascii=False, indent=1))
    else:
        make_sheet(args)


if __name__ == "__main__":
    main()
