"""The `poetry-lstm` command: `poetry-lstm generate 床前明月光`.

A click group; each command's docstring is its --help. User mistakes raise click exceptions
(one sentence, non-zero exit); PoetryError from the library becomes one too, never a traceback.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users

import click

from .config import Config, load_config
from .errors import InputError, PoetryError


class UserError(click.ClickException):
    """Exit code 1 with one sentence."""


class RefusedInput(click.UsageError):
    """Exit code 2: the input itself was refused."""

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True)


def friendly(fn):
    """Turn library errors into one-line CLI errors."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            raise RefusedInput(str(exc)) from None
        except PoetryError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            raise UserError("Interrupted; files already written are complete, and running the command again resumes.") from None
    return wrapper


def config_of(ctx: click.Context) -> Config:
    return ctx.obj["config"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file overriding config/default.toml.")
@click.pass_context
@friendly
def cli(ctx, config_file):
    """Finish a five-character quatrain (五言绝句) from its first line.

    \b
    Example:
      poetry-lstm crawl --source chinese-poetry --from chinese-poetry-2.0.1.tgz
      poetry-lstm train --mode word2vec
      poetry-lstm generate 床前明月光
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = load_config(config_file)


@cli.command()
@click.option("--source", type=click.Choice(["chinese-poetry", "gushiwen"]), default=None, help="Where poems come from (default from config).")
@click.option("--from", "source_path", type=click.Path(), default=None, help="chinese-poetry: a local clone/folder or the npm tarball instead of HTTP.")
@click.option("--base-url", default=None, help="gushiwen: crawl this host instead of the real site.")
@click.option("--max-pages", type=click.IntRange(1), default=None, help="gushiwen: list pages per dynasty at most.")
@click.option("--delay", type=click.FloatRange(0), default=None, help="gushiwen: seconds between requests (at least).")
@click.option("--forms", default=None, help="Forms kept by the cleaner: wujue, or wujue,wulv to add 五律 halves to training.")
@click.pass_context
@friendly
def crawl(ctx, source, source_path, base_url, max_pages, delay, forms):
    """Fetch poems into crawler/raw/, then clean them into corpus/.

    \b
    Examples:
      npm pack chinese-poetry@2.0.1
      poetry-lstm crawl --source chinese-poetry --from chinese-poetry-2.0.1.tgz
      poetry-lstm crawl --source gushiwen --max-pages 5
    """
    cfg = config_of(ctx).replace("crawl", source=source, max_pages=max_pages, delay=delay)
    # A flag of the other source would be ignored; say so rather than crawl something else than asked.
    misplaced = ([("--from", source_path)] if cfg.crawl.source == "gushiwen" else
                 [("--base-url", base_url), ("--max-pages", max_pages), ("--delay", delay)])
    names = [name for name, value in misplaced if value is not None]
    if names:
        other = "chinese-poetry" if cfg.crawl.source == "gushiwen" else "gushiwen"
        raise RefusedInput(f"{' and '.join(names)} {'applies' if len(names) == 1 else 'apply'} to --source {other} only; "
                           f"drop {'it' if len(names) == 1 else 'them'} or add --source {other}.")
    if forms:
        cfg = cfg.replace("clean", forms=[f.strip() for f in forms.split(",") if f.strip()])
    started = time.perf_counter()
    if cfg.crawl.source == "gushiwen":
        from .gushiwen import crawl_gushiwen
        stats = crawl_gushiwen(cfg, base_url=base_url)
    else:
        from .crawl import crawl_chinese_poetry
        stats = crawl_chinese_poetry(cfg, source_path)
    click.echo(f"crawl: {json.dumps(stats, ensure_ascii=False)} in {time.perf_counter() - started:.1f} s")
    _clean(cfg)


def _clean(cfg: Config) -> None:
    from .clean import clean_corpus
    started = time.perf_counter()
    report = clean_corpus(cfg)
    click.echo(f"clean: kept {report['kept']} ({report['kept_real_quatrains']} real 五绝, {report['kept_wulv_halves']} 五律 halves), "
               f"splits {report['per_split']}, vocabulary {report['vocabulary_size']} in {time.perf_counter() - started:.1f} s")
    click.echo(f"clean: dropped {json.dumps(report['dropped'], ensure_ascii=False)}; report in {cfg.paths.corpus_dir}/report.json")


@cli.command()
@click.option("--forms", default=None, help="wujue, or wujue,wulv to add 五律 halves to training.")
@click.pass_context
@friendly
def clean(ctx, forms):
    """Rebuild corpus/ from the raw records already in crawler/raw/.

    \b
    Example:
      poetry-lstm clean --forms wujue,wulv
    """
    cfg = config_of(ctx)
    if forms:
        cfg = cfg.replace("clean", forms=[f.strip() for f in forms.split(",") if f.strip()])
    _clean(cfg)


@cli.command()
@click.option("--mode", type=click.Choice(["word2vec", "onehot"]), default=None, help="Input features (default from config).")
@click.option("--fine-tune-vectors", is_flag=True, default=None, help="word2vec: let the skip-gram vectors learn too.")
@click.option("--retrain-vectors", is_flag=True, help="word2vec: train new vectors even if matching ones exist.")
@click.option("--resume", is_flag=True, help="Continue a stopped run from its last checkpoint.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Upper bound on epochs (early stopping may end sooner).")
@click.option("--units", type=click.IntRange(1), default=None, help="LSTM units per layer.")
@click.option("--layers", type=int, default=None, help="Stacked LSTM layers (at least 2).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Windows per step.")
@click.option("--max-minutes", type=float, default=None, help="Stop after the epoch that passes this many minutes.")
@click.option("--seed", type=int, default=None, help="The one seed (Python, NumPy, TensorFlow).")
@click.pass_context
@friendly
def train(ctx, mode, fine_tune_vectors, retrain_vectors, resume, epochs, units, layers, batch_size, max_minutes, seed):
    """Train a next-character LSTM on corpus/ into models/<mode>/.

    \b
    Examples:
      poetry-lstm train --mode word2vec
      poetry-lstm train --mode onehot --resume
    """
    cfg = config_of(ctx).replace("train", mode=mode, fine_tune_vectors=fine_tune_vectors, epochs=epochs,
                                 batch_size=batch_size, max_minutes=max_minutes, seed=seed)
    cfg = cfg.replace("model", units=units, layers=layers)
    if cfg.model.layers < 2:
        raise UserError("--layers must be at least 2: the network is a stacked LSTM.")
    from .model import import_keras
    from .train import train as run_training
    import_keras()
    command = "poetry-lstm " + " ".join(sys.argv[1:])
    run_training(cfg, cfg.train.mode, resume=resume, retrain_vectors=retrain_vectors, command=command,
                 log=lambda msg: click.echo(msg))


def _models_dir(cfg: Config, mode: str):
    from pathlib import Path
    return Path(cfg.paths.models_dir) / mode


def _print_poem(poem, index: int) -> None:
    mark = lambda ok: "✓" if ok else ("-" if ok is None else "✗")
    click.echo(f"[{index}]" + (f"  {poem.form}" if poem.form else ""))
    for line, end in zip(poem.lines, "，。，。"):
        click.echo(f"    {line}{end}")
    c = poem.checks
    click.echo(f"    {mark(c['form'])} form  {mark(c['tone'])} tone  {mark(c['rhyme'])} rhyme  "
               f"{mark(None if c['copied'] is None else not c['copied'])} new   score {poem.score:.2f}")
    for w in poem.warnings:
        click.echo(f"    note: {w}")


@cli.command()
@click.argument("first_line", required=False)
@click.option("--n", type=click.IntRange(1, 20), default=None, help="How many poems.")
@click.option("--mode", type=click.Choice(["word2vec", "onehot"]), default=None, help="Which model answers.")
@click.option("--temperature", type=click.FloatRange(0.05, 5), default=None, help="Below 1: safer; above 1: wilder.")
@click.option("--top-k", type=click.IntRange(0), default=None, help="Sample among the K likeliest allowed characters (0 = all).")
@click.option("--top-p", type=click.FloatRange(0.01, 1), default=None, help="Nucleus sampling mass.")
@click.option("--beam", type=click.IntRange(1, 64), default=None, help="Beam width (1 = sampling).")
@click.option("--seed", type=int, default=None, help="Same seed, same poems.")
@click.option("--no-tones", is_flag=True, help="Do not constrain 平仄.")
@click.option("--no-rhyme", is_flag=True, help="Do not constrain the rhyme.")
@click.option("--no-novelty", is_flag=True, help="Allow training lines and repeated characters.")
@click.option("--acrostic", default=None, help="藏头诗: four characters that start the four lines.")
@click.option("--theme", default=None, help="A theme in modern Chinese, e.g. 思念故乡的秋夜.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
@friendly
def generate(ctx, first_line, n, mode, temperature, top_k, top_p, beam, seed, no_tones, no_rhyme, no_novelty, acrostic, theme, as_json):
    """Finish a quatrain from its first line (or write one from heads or a theme).

    \b
    Examples:
      poetry-lstm generate 床前明月光
      poetry-lstm generate 床前明月光 --n 5 --beam 8 --json
      poetry-lstm generate --acrostic 春夏秋冬
      poetry-lstm generate --theme 思念故乡的秋夜
    """
    from .generate import acrostic_poem, complete_poem, theme_poem
    from .weights import limit_blas_threads, load_model_fast, load_vectors_fast

    g = config_of(ctx).replace("generate", mode=mode, n=n, temperature=temperature, top_k=top_k, top_p=top_p,
                               beam=beam, seed=seed).generate
    given = [x for x in (first_line, acrostic, theme) if x is not None]
    if len(given) != 1:
        raise RefusedInput("Give exactly one of: a first line (e.g. 床前明月光), --acrostic 春夏秋冬, or --theme 思念故乡的秋夜.")
    options = dict(n=g.n, temperature=g.temperature, top_k=g.top_k, top_p=g.top_p, beam=g.beam, seed=g.seed,
                   tones=g.tones and not no_tones, rhyme=g.rhyme and not no_rhyme, novelty=g.novelty and not no_novelty,
                   max_tries=g.max_tries)
    if first_line is not None:
        from .generate import normalize_line
        normalize_line(first_line)  # refuse bad input before the model loads
    limit_blas_threads(1)  # one poem is many tiny matrix products: extra BLAS threads only spin
    trained = load_model_fast(_models_dir(config_of(ctx), g.mode))  # NumPy weights: no TensorFlow start-up
    if acrostic is not None:
        result = acrostic_poem(trained, acrostic, **options)
    elif theme is not None:
        vec_dir = _models_dir(config_of(ctx), "word2vec") / "vectors"
        result = theme_poem(trained, theme, vectors=load_vectors_fast(vec_dir) if vec_dir.exists() else None, **options)
    else:
        result = complete_poem(trained, first_line, **options)
    if as_json:
        poems = [{"text": p.text, "lines": p.lines, "score": p.score, "form": p.form,
                  "checks": {k: p.checks[k] for k in ("form", "tone", "tone_245", "rhyme", "copied")}, "warnings": p.warnings}
                 for p in result.poems]
        out = {"first_line": result.first_line, "mode": g.mode, "poems": poems, "warnings": result.warnings}
        if theme is not None:
            out.update(keywords=result.keywords, keyword_used=result.keyword_used)
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if first_line is not None and result.first_line != first_line.strip().rstrip("，,。."):
        click.echo(f"first line read as {result.first_line}")
    if theme is not None:
        click.echo(f"keywords: {' '.join(result.keywords)}; used {result.keyword_used}")
    for w in result.warnings:
        click.echo(f"note: {w}")
    for i, poem in enumerate(result.poems, 1):
        _print_poem(poem, i)


@cli.command()
@click.option("--mode", type=click.Choice(["word2vec", "onehot"]), default=None, help="One model (default: every model present).")
@click.option("--file", "poem_file", type=click.Path(dir_okay=False), default=None, help="Score these quatrains (one a line) instead of the test split.")
@click.option("--generate", "with_generation", is_flag=True, help="Also complete the test poems' first lines and report the poems' metrics.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N poems (quick checks).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@click.pass_context
@friendly
def evaluate(ctx, mode, poem_file, with_generation, limit, as_json):
    """Perplexity and accuracy of lines 2–4 given line 1, beside a trigram baseline.

    \b
    Examples:
      poetry-lstm evaluate --mode onehot --json
      poetry-lstm evaluate --file my_poems.txt
      poetry-lstm evaluate --generate
    """
    from .evaluate import evaluate_model, generation_report, poem_metrics, read_poem_file
    from .metrics import format_table, train_ngrams
    from .model import load_model_dir
    from .train import split_texts

    cfg = config_of(ctx)
    modes = [mode] if mode else [m for m in ("word2vec", "onehot") if _models_dir(cfg, m).exists()]
    if not modes:
        raise UserError(f"No model in {cfg.paths.models_dir}; run `poetry-lstm train --mode word2vec` first.")
    from .model import import_keras
    import_keras()
    if with_generation:
        from .weights import limit_blas_threads
        limit_blas_threads(1)  # the decoder's tiny matrix products: extra BLAS threads only spin
    results, generation = {}, {}
    for m in modes:
        trained = load_model_dir(_models_dir(cfg, m))
        splits = split_texts(cfg, bool(trained.config.get("train", {}).get("use_halves")))
        poems = read_poem_file(poem_file) if poem_file else splits["test"]
        poems = poems[:limit] if limit else poems
        if not poems:
            raise UserError("The corpus has no test poems; rebuild it with `poetry-lstm crawl`.")
        results[m] = evaluate_model(trained, poems, splits["train"])
        if with_generation:  # the shipped defaults of [generate], constraints on and then all off
            g, first = cfg.generate, [p[:5] for p in poems]
            opts = dict(temperature=g.temperature, top_k=g.top_k, top_p=g.top_p, beam=g.beam, max_tries=g.max_tries, seed=g.seed)
            generation[f"{m}, constrained"] = generation_report(trained, first, splits["train"], **opts)
            generation[f"{m}, unconstrained"] = generation_report(trained, first, splits["train"], tones=False, rhyme=False,
                                                                  novelty=False, **opts)
    if with_generation:
        generation["real poems"] = poem_metrics(poems, trained.line_hashes(), train_ngrams(splits["train"]), first_line_kept=1.0)
    if as_json:
        # The top level is the better model's scores; with several models each one is under "models".
        out = dict(min(results.values(), key=lambda r: r["perplexity"]))
        if len(modes) > 1:
            out["models"] = results
        if with_generation:
            out["generation"] = generation
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    click.echo(format_table({m: {k: v for k, v in r.items() if k != "mode"} for m, r in results.items()}))
    if with_generation:
        click.echo("")
        click.echo(format_table(generation))


def main():
    cli(obj={})


if __name__ == "__main__":
    sys.exit(main())
