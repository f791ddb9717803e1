"""Score a model on held-out poems: `poetry-lstm evaluate --mode onehot --json`.

Per-character perplexity and top-1 accuracy of lines 2–4 given line 1 (punctuation excluded),
beside a character trigram model with interpolated Kneser–Ney smoothing fitted on the same
training poems and the model's vocabulary, scored on the same positions; and how much the model
has learned to rhyme: its probability, at line 4's last character, on characters that share a
平声 group with line 2's last character (the "rhyme mass"), beside what the frequencies of
line endings alone would give.

With `--generate`, the poems completed from the same first lines, for the `[generate]` defaults,
for beam 8 and with every constraint off, beside the real poems: the rule checks (`prosody`), the
copy and diversity figures (`metrics`) and whether they read like poems (`reading`, `judge`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import layout, reading
from .baseline import KneserNey, TrigramKN, score, scored_positions
from .clean import load_corpus, texts_by_split
from .config import DecodeSettings, GenerateConfig
from .errors import PoetryError
from .generate import complete_all
from .judge import fit_judge, judge_perplexity, training_lines
from .loading import TrainedModel, load_model
from .metrics import format_table, poem_lines, summarize, train_ngrams
from .modeldir import form_flag, missing_model_error, read_model_config, shape_of_args
from .network import import_keras
from .prosody import PING, check_after_first, feature_table, forms_for_first_line, quatrain_lines, rates
from .prosody import reading as reading_of
from .stepper import limit_blas_threads
from .vectors import load_vectors_fast

CHUNK = 256  # poems per forward pass: (256, 24, vocab) float32 stays near 150 MB


EXAMPLES = {5: "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
            7: "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"}


def read_poem_file(path: str | Path, shape: layout.Shape = layout.FIVE) -> list[str]:
    """One quatrain of `shape` (a 五绝, or a 七绝's 32 slots) a line in ，。 form; a bad line is refused with its
    number."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PoetryError(f"{path} does not exist; pass a file with one quatrain a line.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PoetryError(f"Cannot read {path} as UTF-8 text ({exc.__class__.__name__}).") from None
    poems = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if layout.shape_of_text(line) != shape or quatrain_lines(line) is None:
            raise PoetryError(f"Line {number} of {path} is not a quatrain like {EXAMPLES[shape.chars]}")
        poems.append(line)
    if not poems:
        raise PoetryError(f"{path} holds no poems; write one quatrain a line.")
    return poems


def rhyme_places(shape: layout.Shape) -> tuple[int, int]:
    """Text indices of line 2's and line 4's last characters."""
    return shape.line_ends[1], shape.line_ends[3]


def rhyme_sets(poems: list[str], tokens) -> tuple[np.ndarray, np.ndarray]:
    """(which poems count, (counted poems, vocab) bool: tokens sharing a 平声 group with line 2's end).

    A poem counts when line 2 ends in a character that is only 平 (a 仄 or polyphonic end may
    rhyme on 仄 or not at all, which the 平声 table cannot judge).
    """
    two, _ = rhyme_places(layout.shape_of_text(poems[0]))
    counted = np.array([reading_of(p[two])[0] == {PING} for p in poems], dtype=bool)
    groups = feature_table(tokens)[:, 2:]  # (vocab, groups)
    ends = feature_table([p[two] for p, c in zip(poems, counted) if c])[:, 2:]  # (counted, groups)
    return counted, (ends @ groups.T) > 0


def model_scores(trained: TrainedModel, poems: list[str]) -> dict:
    """Perplexity and accuracy of the LSTM on lines 2–4 of `poems` (unknowns scored as <unk>), and its rhyme mass."""
    vocab, shape = trained.vocab, trained.shape
    ids = np.array([vocab.encode(p) for p in poems], dtype=np.int32)  # (poems, 1 + slots)
    positions = np.array(scored_positions(shape))
    four = rhyme_places(shape)[1]
    counted, rhymes = rhyme_sets(poems, vocab.tokens)
    log_prob, correct, masses = 0.0, 0, []
    for start in range(0, len(poems), CHUNK):
        chunk = ids[start:start + CHUNK]
        probs = np.asarray(trained.keras_model(chunk[:, :-1], training=False))  # (chunk, slots, vocab)
        targets = chunk[:, 1:][:, positions]  # (chunk, 15 or 21)
        picked = np.take_along_axis(probs[:, positions], targets[..., None], axis=-1)[..., 0]
        log_prob += float(np.log(np.maximum(picked, 1e-12)).sum())
        correct += int((probs[:, positions].argmax(-1) == targets).sum())
        here = counted[start:start + CHUNK]
        first = int(counted[:start].sum())
        masses += list((probs[here, four] * rhymes[first:first + int(here.sum())]).sum(axis=1))
    chars = len(poems) * len(positions)
    unknown = int((ids[:, 1:][:, positions] == 1).sum())
    return {"perplexity": math.exp(-log_prob / chars), "accuracy": correct / chars, "chars": chars, "unknown": unknown,
            "rhyme_mass": float(np.mean(masses)) if masses else 0.0, "rhyme_poems": len(masses)}


def unigram_rhyme_mass(poems: list[str], train_poems: list[str], tokens) -> float:
    """The rhyme mass of a model that knows only how often each character ends line 4 in training."""
    counted, rhymes = rhyme_sets(poems, tokens)
    four = rhyme_places(layout.shape_of_text(poems[0]))[1]
    index = {t: i for i, t in enumerate(tokens)}
    freq = np.zeros(len(tokens))
    for p in train_poems:
        freq[index.get(p[four], 1)] += 1  # 1 = <unk>
    return float((rhymes @ (freq / max(freq.sum(), 1))).mean()) if counted.any() else 0.0


def evaluate_model(trained: TrainedModel, poems: list[str], train_poems: list[str] | None) -> dict:
    """The model's scores beside the trigram baseline's on the same poems and vocabulary.

    Without training poems (`evaluate --file` with no corpus) the baseline figures are None.
    """
    if layout.shape_of_text(poems[0]) != trained.shape:
        raise PoetryError(f"The poems have {len(poems[0])} slots and the model at {trained.path} writes "
                          f"{trained.shape.slots}; score 五绝 with a 五绝 model and 七绝 with a 七绝 one "
                          "(--form qijue).")
    ours = model_scores(trained, poems)
    out = {"mode": trained.mode, "poems": len(poems), **ours, "baseline_perplexity": None, "baseline_accuracy": None,
           "ratio_to_baseline": None, "unigram_rhyme_mass": None}
    if train_poems:
        chars = {t for t in trained.vocab.tokens[3:]}
        base = score(TrigramKN().fit(train_poems, vocab=chars), poems)
        out.update(baseline_perplexity=base["perplexity"], baseline_accuracy=base["accuracy"],
                   ratio_to_baseline=ours["perplexity"] / base["perplexity"],
                   unigram_rhyme_mass=unigram_rhyme_mass(poems, train_poems, trained.vocab.tokens))
    return out


def generation_settings(g: GenerateConfig, mode: str) -> dict[str, DecodeSettings]:
    """The decoder settings compared for the model `mode`, by name, from the `[generate]` config `g`:
    its defaults, beam 8, and the defaults with every constraint off (as cheap as the defaults, and
    it shows what the model does on its own)."""
    defaults = g.settings(mode)
    return {"defaults": defaults, "beam 8": replace(defaults, beam=8),
            "defaults, unconstrained": replace(defaults, tones=False, rhyme=False, novelty=False)}


def poem_metrics(poems: list[str], train_hashes, train_4grams: set[str] | None, **extra) -> dict:
    """The rule checks (issue 9 §3: tone over poems whose line 1 fits a form, lines 2–4 over all) and
    `metrics.summarize`; `train_hashes` or `train_4grams` None leaves the copy or novelty figure None."""
    r = rates(poems)
    # The decoder keeps line 1 as given, so a first line that fits no form caps "tone" at the share that do.
    scans = [p for p in poems if forms_for_first_line(poem_lines(p)[0])]
    return {**extra, "form": r["form"], "first_line_fits_a_form": len(scans) / len(poems), "tone": r["tone"],
            "tone_when_first_line_fits": rates(scans)["tone"] if scans else 0.0,
            "lines_2_4_regulated": sum(map(check_after_first, poems)) / len(poems), "tone_245": r["tone_245"],
            "rhyme": r["rhyme"], "tone_and_rhyme": r["both"], **summarize(poems, train_hashes, train_4grams)}


@dataclass
class Yardsticks:
    """What the reading measures compare against; any may be None when its source is absent."""
    real: list[str]                 # the real poems whose first lines were completed
    judge: KneserNey | None = None  # `judge.fit_judge(...)`: needs the corpus
    real_judge: dict | None = None  # the judge's figures on the real poems
    vectors: object = None          # skip-gram vectors (`vectors.CharVectors`) for coherence: needs the word2vec model
    attested: frozenset | None = None  # 叠字 of the training lines: needs the corpus


def make_yardsticks(real: list[str], judge=None, vectors=None, attested=None) -> Yardsticks:
    """Yardsticks with the judge's figures on the real poems worked out once."""
    return Yardsticks(real, judge, judge_perplexity(judge, real) if judge is not None else None, vectors, attested)


def reading_measures(poems: list[str], sticks: Yardsticks, of_real: bool = False) -> dict:
    """Issue 10's measures of `poems`; with `of_real` (the real poems themselves) the comparisons with
    them are left out."""
    ours = not of_real
    out: dict = {}
    if ours:
        enough = min(len(poems), len(sticks.real)) >= reading.DISCRIMINATOR_FOLDS
        out["discriminator_accuracy"] = reading.discriminator_accuracy(sticks.real, poems) if enough else None
    if sticks.judge is not None:
        judged = judge_perplexity(sticks.judge, poems) if ours else sticks.real_judge
        out["judge_perplexity"] = judged["perplexity"]
        out["judge_ratio_to_real"] = judged["perplexity"] / sticks.real_judge["perplexity"]
    out["formula_rate"] = reading.formula_rate(poems)
    if sticks.vectors is not None:
        out.update(reading.coherence(poems, sticks.vectors))
    gap = reading.char_frequency_gap(sticks.real, poems)
    out.update(distinct_chars=gap["distinct_chars"], doubled_chars=reading.doubled_rate(poems),
               stutter=None if sticks.attested is None else reading.stutter_rate(poems, sticks.attested),
               echo=reading.echo_rate(poems), **reading.repeated_char_rates(poems))
    if ours:
        out.update(char_distribution_gap=gap["char_distribution_gap"], overused_ratio=gap["overused_ratio"],
                   overused=gap["overused"])
    return out


def generation_rows(models: dict[str, TrainedModel], settings: dict[str, dict[str, DecodeSettings]], sticks: Yardsticks,
                    train_hashes, train_4grams: set[str] | None, log=lambda _: None) -> dict[str, dict]:
    """"<mode>, <setting>" → the metrics of the poems that model completes from the real poems' first
    lines under that setting (`settings[mode][setting]`), then "real poems" → the
    same metrics of the real poems."""
    first_lines = [poem_lines(p)[0] for p in sticks.real]
    rows = {}
    for mode, trained in models.items():
        for name, setting in settings[mode].items():
            poems, seconds = complete_all(trained, first_lines, setting)
            log(f"{mode}, {name}: {len(poems)} poems, {1000 * seconds:.0f} ms each")
            kept = sum(poem_lines(p)[0] == line for p, line in zip(poems, first_lines)) / len(poems)
            rows[f"{mode}, {name}"] = {**poem_metrics(poems, train_hashes, train_4grams, first_line_kept=kept),
                                       **reading_measures(poems, sticks), "ms_per_poem": 1000 * seconds}
    rows["real poems"] = {**poem_metrics(sticks.real, train_hashes, train_4grams, first_line_kept=1.0),
                          **reading_measures(sticks.real, sticks, of_real=True)}
    return rows


BUILD_CORPUS = ("`npm pack chinese-poetry@2.0.1` (the published data set, 85 MB), then "
                "`poetry-lstm crawl --source chinese-poetry --from chinese-poetry-2.0.1.tgz`")
WITHOUT_CORPUS = ["trigram baseline", "unigram rhyme mass", "novel 4-grams", "judge perplexity", "stutter"]


def models_present(cfg, mode: str | None) -> list[str]:
    """[mode] when one is asked for, else every model folder in models_dir; none is an error that says what to run."""
    models_dir = Path(cfg.paths.models_dir)
    modes = [mode] if mode else [m for m in ("word2vec", "onehot") if (models_dir / m).exists()]
    if not modes:
        raise PoetryError(f"No model in {models_dir}; run `poetry-lstm train --mode word2vec"
                          f"{form_flag(models_dir / 'word2vec')}` first.")
    return modes


def _shape_of(folder: Path) -> layout.Shape:
    """The line length the model in `folder` writes, read from its config (a broken folder: what to run)."""
    error = missing_model_error(folder)
    if error:
        raise error
    return shape_of_args(read_model_config(folder)["model_args"])


def evaluation_inputs(cfg, mode: str | None, poem_file: str | None,
                      limit: int | None) -> tuple[list[str], list[str], list[dict] | None]:
    """(modes to score, poems to score, corpus records or None), checked before anything slow loads.

    Without a corpus only `--file` can run, and what needs the corpus is left out; otherwise the
    error gives the commands that build it.
    """
    modes = models_present(cfg, mode)
    corpus = Path(cfg.paths.corpus_dir) / "quatrains.jsonl"
    if not corpus.exists() and not poem_file:
        raise PoetryError(f"No corpus at {corpus}: evaluation scores its test poems; build it with {BUILD_CORPUS}, "
                          "or score your own quatrains with --file.")
    poems = read_poem_file(poem_file, _shape_of(Path(cfg.paths.models_dir) / modes[0])) if poem_file else None
    records = load_corpus(cfg) if corpus.exists() else None
    if poems is None:
        poems = texts_by_split(records, False)["test"]
    poems = poems[:limit] if limit else poems
    if not poems:
        raise PoetryError(f"The corpus at {corpus} has no test poems; rebuild it with {BUILD_CORPUS}.")
    return modes, poems, records


def yardsticks(cfg, real: list[str], records: list[dict] | None, log) -> Yardsticks:
    """The judge and the attested 叠字 from the corpus's training lines, the skip-gram vectors of the word2vec model."""
    judge = attested = vectors = None
    if records is not None:
        started = time.perf_counter()
        lines = training_lines(records, len(poem_lines(real[0])[0]))  # five characters, or a 七绝's seven
        judge, attested = fit_judge(lines), reading.attested_doubles(lines)
        log(f"judge: {judge.order}-gram Kneser–Ney on {len(lines)} training lines "
            f"in {time.perf_counter() - started:.1f} s")
    vector_dir = Path(cfg.paths.models_dir) / "word2vec" / "vectors"
    if (vector_dir / "vectors.bin").exists():
        vectors = load_vectors_fast(vector_dir)
    else:
        log(f"no skip-gram vectors at {vector_dir}: coherence is left out")
    return make_yardsticks(real, judge, vectors, attested)


def run_evaluation(cfg, mode: str | None = None, poem_file: str | None = None, with_generation: bool = False,
                   limit: int | None = None, log=lambda _: None) -> dict:
    """Everything `poetry-lstm evaluate` reports: {"models": mode → scores, "generation": row → metrics
    (with `with_generation`), "skipped": what the missing corpus left out, "seconds"}."""
    started = time.perf_counter()
    modes, poems, records = evaluation_inputs(cfg, mode, poem_file, limit)
    skipped = [] if records is not None else WITHOUT_CORPUS
    if skipped:
        log(f"no corpus at {cfg.paths.corpus_dir}: scoring {poem_file} without the {', '.join(skipped)}")
    import_keras()  # only now: every cheap check above fails in a second, not after TensorFlow's start-up
    out: dict = {"models": {}, "skipped": skipped}
    train_splits = {}
    for m in modes:
        trained = load_model(Path(cfg.paths.models_dir) / m, keras=True)
        use_windows = bool(trained.config.get("train", {}).get("use_windows"))
        train_splits[m] = texts_by_split(records, use_windows)["train"] if records is not None else None
        out["models"][m] = evaluate_model(trained, poems, train_splits[m])
    if with_generation:
        out["generation"] = _generation(cfg, modes, poems, records, train_splits[modes[0]], log)
    out["seconds"] = time.perf_counter() - started
    return out


def _generation(cfg, modes: list[str], poems: list[str], records, train_poems, log) -> dict[str, dict]:
    """The rows of `generation_rows`; models of one corpus share the copy check (`train_lines.u64`),
    so the first model's hashes and training 4-grams serve them all."""
    limit_blas_threads(1)  # the decoder's tiny matrix products: extra BLAS threads only spin
    models = {m: load_model(Path(cfg.paths.models_dir) / m) for m in modes}
    sticks = yardsticks(cfg, poems, records, log)
    grams = train_ngrams(train_poems) if train_poems else None
    settings = {m: generation_settings(cfg.generate, models[m].settings_key) for m in modes}
    return generation_rows(models, settings, sticks, models[modes[0]].line_hashes(), grams, log)


def format_report(report: dict) -> str:
    """`run_evaluation`'s report as text: the models' scores, then per model its decoder settings
    beside the real poems, and the characters each setting over-uses."""
    parts = [format_table({m: {k: v for k, v in r.items() if k != "mode"} for m, r in report["models"].items()})]
    if report["skipped"]:
        parts.append(f"left out without a corpus: {', '.join(report['skipped'])}")
    rows = report.get("generation")
    for mode in report["models"] if rows else []:
        real = rows["real poems"]
        mine = {name.split(", ", 1)[1]: row for name, row in rows.items() if name.startswith(f"{mode}, ")}
        table = {name: {k: v for k, v in row.items() if k != "overused"} for name, row in mine.items()}
        parts.append(f"{mode}: poems completed from the same first lines, beside the real poems\n"
                     + format_table({**table, "real poems": real}))
        parts.append("over-used characters (ours / real count):\n" + "\n".join(
            f"  {name}: " + "  ".join(f"{ch} {ours}/{theirs}" for ch, ours, theirs, _ in row["overused"])
            for name, row in mine.items()))
    parts.append(f"{report['seconds']:.0f} s")
    return "\n\n".join(parts)
