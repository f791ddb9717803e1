"""A pilot, not in the library: plain completions planned by co-occurrence.

For lines 3 and 4 (the turn and the close), a two-character word among the ten with the highest PMI with
line 1's words and characters over every training text, placed as `--theme` places its keywords
(`generate.place`); the seed picks which of the ten. The pairs of this reading were written with

    python docs/readings/2026-12-06-pairs-plan34-20261220/plan.py pairs 2,3 20261220 \
        docs/readings/2026-12-06-pairs-plan34-20261220

(bench/blind_reading.py's pairs, with these poems), and `plan.py show 孤舟明月夜` prints a line's partners.
"""
from __future__ import annotations

import math
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from poetry_lstm import generate as G  # noqa: E402
from poetry_lstm import layout  # noqa: E402
from poetry_lstm.clean import load_corpus, texts_by_split  # noqa: E402
from poetry_lstm.config import load_config  # noqa: E402
from poetry_lstm.decoder import Candidate, decode  # noqa: E402

SPANS = ((0, 2), (2, 4), (3, 5))  # where a five-character line puts its two-character words


def words(line: str) -> set[str]:
    return {line[a:b] for a, b in SPANS}


class Cooccurrence:
    """Line 1's words and characters against the words of lines 2–4, over every training text."""

    def __init__(self):
        texts = texts_by_split(load_corpus(load_config()), True)["train"]
        self.first, self.later, self.starts = Counter(), Counter(), Counter()
        pairs: dict[str, Counter] = defaultdict(Counter)
        for text in texts:
            lines = layout.lines_of(text)
            keys = sorted(words(lines[0]) | set(lines[0]))  # sorted: a set's order changes from run to run
            rest = sorted(set().union(*(words(ln) for ln in lines[1:])))
            self.first.update(keys)
            self.later.update(rest)
            self.starts.update(ln[:2] for ln in lines)  # a word that opens lines is a word, not a seam
            for key in keys:
                pairs[key].update(rest)
        self.pairs = {k: dict(c.most_common(1000)) for k, c in pairs.items() if self.first[k] >= 3}
        self.texts = len(texts)

    def partners(self, line: str, k: int = 10) -> list[str]:
        score = Counter()
        for key in sorted(words(line) | set(line)):
            for word, n in self.pairs.get(key, {}).items():
                if n < 3 or self.starts[word] < 10 or set(word) & set(line):
                    continue
                pmi = math.log(n * self.texts / (self.first[key] * self.later[word]))
                if pmi > 1.0:  # e: the pair comes three times as often as chance would have it
                    score[word] += pmi * math.log1p(n) * (1.0 if len(key) == 2 else 0.5)
        return [w for w, _ in score.most_common(k)]


def planned_poem(cooc: Cooccurrence, trained, line: str, seed: int, lines=(2, 3)) -> tuple[str, list[str]]:
    candidates = [w for w in cooc.partners(line) if all(trained.vocab.id(c) > 2 for c in w)]
    random.Random(seed).shuffle(candidates)
    picked, used = [], set(line)
    for word in candidates:
        if not set(word) & used and len(picked) < len(lines):
            picked.append(word)
            used |= set(word)
    s = G.settings_for(trained, None, n=1, seed=seed)

    def make_seed(rng):
        form, types, free = G.choose_form(rng, s.tones, line=line, rules=s.rules, licences=s.licences)
        forced = dict(enumerate(line))
        for at, word in zip(lines, picked):
            start, text = G.place(rng, types[at] if types else None, at, word, word[0], s.rules, s.licences)
            forced.update({layout.slot(at, start + j): ch for j, ch in enumerate(text)})
        return Candidate([""] * layout.SLOTS, forced, types, form, free=free)

    return decode(trained, make_seed, s)[0].text, picked


def main() -> None:
    import blind_reading

    from poetry_lstm.loading import load_model

    cooc = Cooccurrence()
    if sys.argv[1] == "show":
        trained = load_model(ROOT / "models" / "word2vec")
        for line in sys.argv[2:]:
            print(line, cooc.partners(line), *planned_poem(cooc, trained, line, 0))
        return
    at = tuple(int(x) for x in sys.argv[2].split(","))
    blind_reading.ours = lambda model, settings, firsts, seed: [  # noqa: E731
        planned_poem(cooc, model, line, seed + i, at)[0] for i, line in enumerate(firsts)]
    sys.argv = ["blind_reading.py", "pairs", "--split", "valid", "--seed", sys.argv[3], "--out", sys.argv[4]]
    blind_reading.main()


if __name__ == "__main__":
    main()
