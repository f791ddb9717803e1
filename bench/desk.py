"""The poet's desk measured (issue 17): errors injected into real poems, and the checker over real and our poems.

    python bench/desk.py inject --split test          # detection, false alarms, repair, restoration
    python bench/desk.py real                         # what the checker flags in every real 五绝
    python bench/desk.py generated --split test --limit 300  # our poems at the defaults, checked
    python bench/desk.py revise --split test --limit 30      # every line of 30 poems rewritten, checked
    python bench/desk.py ranking --split valid               # restoration under other rankings of the repairs

`inject` takes the held-out 五绝 that EVALUATION.md's rules call regular (tone by the accepted variants,
rhyme) and that hold no polyphonic or unknown character at places 2, 4 and 5, so the form is certain. Into
each it puts one error at a time, from a seeded generator:
- tone: place 2 or 4 of a plain line (no fault, no licence, no 多音字) gets a common character of the other tone
  (one of the 1500 most used, a single reading, not already in the poem). Where the rules accept what that
  makes (大拗 rescued by the next line, 特拗), it is no error, and it is counted apart, not scored;
- rhyme: line 2's or line 4's last character becomes a common 平 character of another rhyme group.
Then: detection (an error flagged at that place), false alarms (errors on the untouched poems: by the lenient
rules, which are EVALUATION.md's, and apart from them the disputed licences the strict rules fault), repair (the
first suggestion at the place leaves no error the untouched poem did not have), and restoration (the poet's
own character among the first 1 and 5 suggestions). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from blind_reading import held_out  # noqa: E402


def certain(text: str) -> bool:
    """Every character at places 2, 4 and 5 has one tone: the form the poem fits is not a guess."""
    from poetry_lstm import layout, prosody

    return all(prosody.tone_of(line[j]) in (prosody.PING, prosody.ZE)
               for line in layout.lines_of(text) for j in (1, 3, 4))


def regular(texts: list[str]) -> list[str]:
    from poetry_lstm import prosody

    return [t for t in texts if prosody.check_tone(t) and prosody.check_rhyme(t) and certain(t)]


def common_chars(model, n: int = 1500) -> list[str]:
    from poetry_lstm import prosody

    mk, vocab = model.tables, model.vocab
    ranked = sorted((i for i in range(len(vocab.tokens)) if mk.writable[i]), key=lambda i: -vocab.counts[i])[:n]
    return [vocab.tokens[i] for i in ranked if prosody.tone_of(vocab.tokens[i]) in (prosody.PING, prosody.ZE)]


def inject_tone(text, rng, pool):
    from poetry_lstm import checker, layout, prosody

    # a plain line (no error, no licence), so the error is the injected one alone: in a 特拗 line (平平仄平仄)
    # a 仄 at place 4 makes 平平仄仄仄, which is mended at place 3 as well (三仄尾), and is named there
    # and no 多音字 anywhere in it, or the checker may read one the other way and name another place
    report = checker.check(text)
    clean = [k for k, line in enumerate(layout.lines_of(text))
             if not [p for p in report.problems if p.line == k + 1 and p.kind != "polyphonic"]
             and all(prosody.tone_of(ch) != prosody.BOTH for ch in line)]
    if not clean:
        return None, None
    k, j = int(rng.choice(clean)), int(rng.choice([1, 3]))
    pos = layout.slot(k, j)
    other = prosody.ZE if prosody.tone_of(text[pos]) == prosody.PING else prosody.PING
    choices = [c for c in pool if prosody.tone_of(c) == other and c not in text]
    return pos, str(rng.choice(choices))


def inject_rhyme(text, rng, pool):
    from poetry_lstm import layout, prosody

    pos = layout.LINE_ENDS[int(rng.choice([1, 3]))]
    groups = prosody.rhyme_groups(text[layout.LINE_ENDS[1]]) | prosody.rhyme_groups(text[layout.LINE_ENDS[3]])
    choices = [c for c in pool if prosody.tone_of(c) == prosody.PING and not prosody.rhyme_groups(c) & groups
               and prosody.sure_rhyme_groups(c) and c not in text]
    return pos, str(rng.choice(choices))


def licensed(injected: str, pos: int) -> bool:
    """The injected tone makes a line the rules accept (大拗 rescued, 特拗): no error to find."""
    from poetry_lstm import checker, layout

    return not checker.check(injected).errors(lines=(layout.line_of(pos) + 1,))


def run_inject(args) -> dict:
    from poetry_lstm import checker, layout
    from poetry_lstm.desk import suggestions_for
    from poetry_lstm.loading import load_model
    from poetry_lstm.stepper import limit_blas_threads

    limit_blas_threads(1)
    model = load_model(ROOT / "models" / args.mode)
    poems = regular([t for split in args.split.split(",") for t in held_out(split)])[: args.limit or None]
    pool = common_chars(model)
    rng = np.random.default_rng(args.seed)
    alarms = Counter()
    lenient_alarms = Counter()
    per_kind = {}
    examples = []
    started = time.perf_counter()
    for text in poems:
        base = checker.check(text)
        alarms.update(p.kind for p in base.errors())
        lenient_alarms.update(p.kind for p in checker.check(text, "lenient").errors())
        for kind, inject in (("tone", inject_tone), ("rhyme", inject_rhyme)):
            pos, ch = inject(text, rng, pool)
            stats = per_kind.setdefault(kind, Counter())
            if pos is None:
                stats["no plain line without a 多音字"] += 1
                continue
            bad = text[:pos] + ch + text[pos + 1:]
            stats["injected"] += 1
            if kind == "tone" and licensed(bad, pos):
                stats["licensed"] += 1
                continue
            report = checker.check(bad)
            place = (layout.line_of(pos) + 1, layout.char_of(pos) + 1)
            here = [p for p in report.errors() if (p.line, p.char) == place]
            stats["scored"] += 1
            stats["detected"] += bool(here)
            stats["extra_flags"] += len([p for p in report.errors() if (p.line, p.char) != place]) - len(base.errors())
            if not here:
                examples.append({"kind": kind, "poem": bad, "place": place, "missed": True})
                continue
            fixes = suggestions_for(model, report, here[0], 10)
            fixed = bad[:pos] + fixes[0] + bad[pos + 1:] if fixes else bad
            before = {(p.line, p.char, p.kind) for p in base.errors()}
            after = {(p.line, p.char, p.kind) for p in checker.check(fixed).errors()}
            stats["repaired"] += bool(fixes) and after <= before
            stats["restored_1"] += text[pos] in fixes[:1]
            stats["restored_5"] += text[pos] in fixes[:5]
            if len(examples) < 12:
                examples.append({"kind": kind, "poem": bad, "original": text[pos], "place": place,
                                 "suggestions": fixes})
    scored = {k: {**v, "detection": v["detected"] / max(v["scored"], 1),
                  **{name: v[key] / max(v["detected"], 1) for name, key in
                     (("repair", "repaired"), ("restoration_at_1", "restored_1"), ("restoration_at_5", "restored_5"))}}
              for k, v in per_kind.items()}
    flagged = sum(bool(checker.check(t).errors()) for t in poems)
    lenient = sum(bool(checker.check(t, "lenient").errors()) for t in poems)
    return {"command": "python bench/desk.py " + " ".join(sys.argv[1:]), "poems": len(poems),
            "false_alarms": {"lenient_poems_flagged": lenient, "lenient_per_30": 30 * lenient / max(len(poems), 1),
                             "lenient_by_kind": dict(lenient_alarms), "strict_poems_flagged": flagged,
                             "strict_per_30": 30 * flagged / max(len(poems), 1), "strict_by_kind": dict(alarms)},
            "injected": scored, "seconds": round(time.perf_counter() - started, 1), "examples": examples}


def run_real(args) -> dict:
    """What the checker flags in every real 五绝 of the corpus, and how many first lines it accepts."""
    from poetry_lstm import checker, meter, prosody
    from poetry_lstm.clean import load_corpus
    from poetry_lstm.config import load_config

    poems = [r["text"] for r in load_corpus(load_config()) if r["form"] == "wujue"]
    out = {}
    for rules in meter.RULE_SETS:
        kinds, ok = Counter(), 0
        for text in poems:
            report = checker.check(text, rules)
            ok += report.ok
            kinds.update({p.kind for p in report.errors()})
        out[rules] = {"poems": len(poems), "ok": ok / len(poems),
                      "poems_with": {k: round(n / len(poems), 4) for k, n in kinds.most_common()}}
        firsts = [t[:5] for t in poems]
        out[rules]["first_lines_accepted"] = sum(
            any(any(prosody._fits(line, v) for v in prosody.given_variants(types[0], rules))
                for types in prosody.FORMS.values()) for line in firsts) / len(firsts)
    return {"command": "python bench/desk.py " + " ".join(sys.argv[1:]), **out}


def run_generated(args) -> dict:
    from poetry_lstm import checker
    from poetry_lstm.generate import complete_all
    from poetry_lstm.loading import load_model

    model = load_model(ROOT / "models" / args.mode)
    from blind_reading import settings_from

    settings = settings_from(model, args.set or [])
    firsts = [t[:5] for t in held_out(args.split)][: args.limit or None]
    poems, per_poem = complete_all(model, firsts, settings)
    kinds, failed, examples = Counter(), 0, []
    for text in poems:
        errs = checker.check(text).errors(lines=(2, 3, 4))
        failed += bool(errs)
        kinds.update(p.kind for p in errs)
        if errs and len(examples) < 10:
            examples.append({"poem": text, "problems": [p.message for p in errs]})
    return {"command": "python bench/desk.py " + " ".join(sys.argv[1:]), "poems": len(poems),
            "with_error_in_lines_2_4": failed, "by_kind": dict(kinds), "ms_per_poem": round(1000 * per_poem),
            "examples": examples}


def run_ranking(args) -> dict:
    """Restoration under other rankings of the vetted characters: the two-sided shortlist order, the whole poem
    forward, backward or both, over the first 20 or 60 vetted characters (the shipped: forward, 20)."""
    from poetry_lstm import checker, layout
    from poetry_lstm.desk import _sum_logp, vetted_repairs
    from poetry_lstm.loading import load_model
    from poetry_lstm.stepper import limit_blas_threads

    limit_blas_threads(1)
    model = load_model(ROOT / "models" / args.mode)
    backward = model.scorer()
    poems = regular([t for split in args.split.split(",") for t in held_out(split)])[: args.limit or None]
    pool, rng, found = common_chars(model), np.random.default_rng(args.seed), {}
    for text in poems:
        for kind, inject in (("tone", inject_tone), ("rhyme", inject_rhyme)):
            pos, ch = inject(text, rng, pool)
            if pos is None:
                continue
            bad = text[:pos] + ch + text[pos + 1:]
            report = checker.check(bad)
            place = (layout.line_of(pos) + 1, layout.char_of(pos) + 1)
            here = [p for p in report.errors() if (p.line, p.char) == place]
            if not here:
                continue
            vetted = vetted_repairs(model, report, here[0], 60)
            texts = [bad[:pos] + c + bad[pos + 1:] for c in vetted]
            fwd = _sum_logp(model, texts)
            bwd = _sum_logp(backward, [layout.reverse_poem(t) for t in texts])
            for k in (20, 60):
                for name, s in (("two-sided", -np.arange(len(vetted), dtype=float)), ("forward", fwd),
                                ("backward", bwd), ("both", fwd + bwd)):
                    top = [vetted[i] for i in np.argsort(-s[:k], kind="stable")[:5]]
                    tally = found.setdefault(f"{kind} {name} {k}", Counter())
                    tally["cases"] += 1
                    tally["at_1"] += text[pos] in top[:1]
                    tally["at_5"] += text[pos] in top
    return {"command": "python bench/desk.py " + " ".join(sys.argv[1:]),
            **{key: {"cases": t["cases"], **{at: round(t[at] / t["cases"], 3) for at in ("at_1", "at_5")}}
               for key, t in sorted(found.items())}}


def run_revise(args) -> dict:
    """Every line of held-out poems rewritten: each version keeps the other three lines and passes the checker."""
    from poetry_lstm import checker, layout
    from poetry_lstm.desk import revise_line
    from poetry_lstm.loading import load_model
    from poetry_lstm.stepper import limit_blas_threads

    limit_blas_threads(1)
    model = load_model(ROOT / "models" / args.mode)
    poems = held_out(args.split)[: args.limit or 30]
    counts, started, examples = Counter(), time.perf_counter(), []
    for k, text in enumerate(poems):
        for line in range(1, 5):
            revision = revise_line(model, text, line, n=3, seed=k)
            versions = revision.poems
            counts["asked"] += 3
            counts["returned"] += len(versions)
            if len(versions) < 3:  # with the reason: the poem's other lines break the rules, or few lines fit
                other_errors = checker.check(text).errors()
                counts["short, other lines break the rules" if [p for p in other_errors if p.line != line]
                       else "short, the other lines regular"] += 1
            for v in versions:
                kept = [ln for i, ln in enumerate(v.lines) if i != line - 1] == \
                    [ln for i, ln in enumerate(layout.lines_of(text)) if i != line - 1]
                errors = checker.check(v.text).errors(lines=(line,))
                counts["kept_others"] += kept
                counts["line_passes"] += not errors
            if k < 2 and versions:
                examples.append({"poem": text, "line": line, "versions": [v.text for v in versions]})
    return {"command": "python bench/desk.py " + " ".join(sys.argv[1:]), "poems": len(poems), **counts,
            "seconds_per_revision": round((time.perf_counter() - started) / (4 * len(poems)), 2),
            "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=["inject", "real", "generated", "revise", "ranking"])
    parser.add_argument("--mode", default="word2vec")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--seed", type=int, default=20261217)
    parser.add_argument("--set", action="append", help="generated: a setting KEY=VALUE")
    args = parser.parse_args()
    task = {"inject": run_inject, "real": run_real, "generated": run_generated, "revise": run_revise,
            "ranking": run_ranking}[args.task]
    print(json.dumps(task(args), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
