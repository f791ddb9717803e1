"""The `poetry-lstm` command: `poetry-lstm generate 床前明月光`.

A click group; each command's docstring is its --help. User mistakes raise click exceptions
(one sentence, non-zero exit); PoetryError from the library becomes one too, never a traceback.
With --json, an error is `{"error": "..."}` on stdout instead, with the same exit code.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users

import click

from .config import MODES, Config, RangeError, allowed, load_config, model_key
from .errors import InputError, PoetryError
from .layout import FORMS, shape_for, shape_of_text

DEFAULTS = load_config()  # what --help shows; a --config file may change them
# The light install (what `generate` and the page need) leaves these out: they come with the
# `train` extra, and a command that needs one says so before importing anything.
TRAIN_EXTRA = {"tensorflow": "TensorFlow", "keras": "TensorFlow", "gensim": "gensim", "sklearn": "scikit-learn"}
INSTALL_TRAIN = 'pip install -e ".[train]"'
SCORE_NOTE = "score: mean log-probability per generated character under the model; higher is likelier."


def form_option(text: str):
    """`--form wujue|qijue`: which quatrain (五绝, 七绝) a command's models are for."""
    return click.option("--form", type=click.Choice(list(FORMS)), default=None, help=text)
FORMS_HELP = ("Forms kept by the cleaner: wujue; add wulv (五律) and wugu (五古, 五排) to train on their four-line "
              "windows too; qijue, qilv and qigu keep seven-character verse the same way, in corpus/qijue/.")


class UserError(click.ClickException):
    """Exit code 1 with one sentence."""


class RefusedInput(click.UsageError):
    """Exit code 2: the input itself was refused."""

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True)


def _needs_extra(command: str, names: list[str]) -> UserError:
    return UserError(f"`poetry-lstm {command}` needs {' and '.join(dict.fromkeys(names))}, which the light install "
                     f"leaves out; install the train extra with {INSTALL_TRAIN} in the project folder.")


def require_training_extra(command: str, modules: tuple[str, ...] = ("tensorflow", "gensim")) -> None:
    """Refuse, before any import of them, when the light install left `modules` out."""
    missing = [TRAIN_EXTRA[m] for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise _needs_extra(command, missing)


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
        except ModuleNotFoundError as exc:
            # A path this command rarely takes (a model file only Keras can read) on the light install.
            if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
                raise
            raise _needs_extra(click.get_current_context().info_name, [TRAIN_EXTRA[exc.name.split(".")[0]]]) from None
        except KeyboardInterrupt:
            raise UserError("Interrupted; files already written are complete, "
                            "and running the command again resumes.") from None
    return wrapper


def config_of(ctx: click.Context) -> Config:
    return ctx.obj["config"]


def with_flags(cfg: Config, section: str, **flags) -> Config:
    """`cfg` with the flags given; the config's range checks apply, and a refusal names the flag."""
    try:
        return cfg.replace(section, **flags)
    except RangeError as exc:
        raise RefusedInput(f"--{exc.key.replace('_', '-')} must be {exc.allowed}, not {exc.value!r}.") from None


def setting(section: str, key: str, text: str):
    """An option overriding [section] key: its range (checked by the config) and default in --help."""
    # The default is written into the help, not given to click: a flag left out must not
    # override the value a --config file sets.
    default, rng = getattr(getattr(DEFAULTS, section), key), allowed(section, key)
    return click.option(f"--{key.replace('_', '-')}", key, type=type(default), default=None,
                        help=f"{text}{f' ({rng})' if rng else ''}.  [default: {default}]")


class JsonErrorGroup(click.Group):
    """A group whose commands with --json report errors as JSON on stdout when --json is given."""

    def _json_wanted(self, args: list[str]) -> bool:
        names = [i for i, arg in enumerate(args) if arg in self.commands]
        if not names or "--json" not in args[names[0]:]:
            return False
        return any(p.name == "as_json" for p in self.commands[args[names[0]]].params)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        if not (standalone_mode and self._json_wanted(args)):
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(json.dumps({"error": exc.format_message()}, ensure_ascii=False))
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo(json.dumps({"error": "Interrupted."}))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=JsonErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file overriding config/default.toml.")
@click.pass_context
@friendly
def cli(ctx, config_file):
    """Finish a five-character quatrain (五言绝句) from its first line.

    The shipped models answer at once; crawl and train only to build your own.

    \b
    Example:
      poetry-lstm generate 床前明月光
      poetry-lstm generate --help
    \b
    To rebuild the models (pip install -e ".[train]" first):
      poetry-lstm crawl --source chinese-poetry --from chinese-poetry-2.0.1.tgz
      poetry-lstm train --mode word2vec
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = load_config(config_file) if config_file else DEFAULTS  # the defaults are read once


@cli.command()
@click.option("--source", type=click.Choice(["chinese-poetry", "gushiwen"]), default=None,
              help=f"Where poems come from.  [default: {DEFAULTS.crawl.source}]")
@click.option("--from", "source_path", type=click.Path(), default=None,
              help="chinese-poetry: a local clone/folder or the npm tarball instead of HTTP.")
@click.option("--base-url", default=None, help="gushiwen: crawl this host instead of the real site.")
@setting("crawl", "max_pages", "gushiwen: list pages per dynasty at most")
@setting("crawl", "delay", "gushiwen: seconds between requests, at least 1 against any other host; under 1 only "
                           "against this machine (127.0.0.1, localhost), which a test or a local mirror may hurry")
@click.option("--force", is_flag=True, default=None,
              help="chinese-poetry: replace the raw records and the corpus even when "
              "the new crawl has fewer than half as many records as the previous one.")
@click.option("--forms", default=None,
              help=FORMS_HELP)
@click.pass_context
@friendly
def crawl(ctx, source, source_path, base_url, max_pages, delay, force, forms):
    """Fetch poems into crawler/raw/, then clean them into corpus/.

    A chinese-poetry crawl with fewer than half as many records as the raw file it would
    replace keeps the previous records and corpus, unless --force is given.

    \b
    Examples:
      npm pack chinese-poetry@2.0.1
      poetry-lstm crawl --source chinese-poetry --from chinese-poetry-2.0.1.tgz
      poetry-lstm crawl --source gushiwen --max-pages 5
    """
    cfg = with_flags(config_of(ctx), "crawl", source=source, max_pages=max_pages, delay=delay)
    # A flag of the other source would be ignored; say so rather than crawl something else than asked.
    misplaced = ([("--from", source_path), ("--force", force)] if cfg.crawl.source == "gushiwen" else
                 [("--base-url", base_url), ("--max-pages", max_pages), ("--delay", delay)])
    names = [name for name, value in misplaced if value is not None]
    if names:
        other = "chinese-poetry" if cfg.crawl.source == "gushiwen" else "gushiwen"
        raise RefusedInput(f"{' and '.join(names)} {'applies' if len(names) == 1 else 'apply'} "
                           f"to --source {other} only; "
                           f"drop {'it' if len(names) == 1 else 'them'} or add --source {other}.")
    if forms:
        cfg = cfg.replace("clean", forms=[f.strip() for f in forms.split(",") if f.strip()])
    started = time.perf_counter()
    if cfg.crawl.source == "gushiwen":
        from .gushiwen import crawl_gushiwen
        stats = crawl_gushiwen(cfg, base_url=base_url)
    else:
        from .crawl import crawl_chinese_poetry
        stats = crawl_chinese_poetry(cfg, source_path, force=bool(force))
    click.echo(f"crawl: {json.dumps(stats, ensure_ascii=False)} in {time.perf_counter() - started:.1f} s")
    if "replaced" in stats:
        click.echo(f"crawl: replaced {stats['replaced']} raw records with {stats['records']}"
                   + (" (--force)" if force else ""))
    _clean(cfg)


def _previous_count(cfg: Config) -> int | None:
    """How many quatrains the corpus about to be replaced holds, if its report says."""
    from .files import read_json
    try:
        return int(read_json(Path(cfg.paths.corpus_dir) / "report.json")["kept"])
    except (PoetryError, KeyError, TypeError, ValueError):
        return None


def _clean(cfg: Config) -> None:
    from .clean import SEVEN_DIR, clean_corpus
    started, previous = time.perf_counter(), _previous_count(cfg)
    report = clean_corpus(cfg)
    click.echo(f"clean: kept {report['kept']} ({report['kept_real_quatrains']} real 五绝, "
               f"{report['kept_wulv_halves']} 五律 halves, "
               f"{report.get('kept_wugu_windows', 0)} windows of 五古 and 五排), "
               f"splits {report['per_split']}, vocabulary {report['vocabulary_size']} "
               f"in {time.perf_counter() - started:.1f} s")
    click.echo(f"clean: dropped {json.dumps(report['dropped'], ensure_ascii=False)}; "
               f"report in {cfg.paths.corpus_dir}/report.json")
    if previous is not None:
        click.echo(f"clean: replaced a corpus of {previous} quatrains with {report['kept']}")
    seven = report.get("seven")
    if seven:
        click.echo(f"clean: seven characters a line: kept {seven['kept']} ({seven['kept_real_quatrains']} real 七绝, "
                   f"{seven['kept_qilv_halves']} 七律 halves, {seven['kept_qigu_windows']} windows of 七古 and 七排), "
                   f"splits {seven['per_split']}, vocabulary {seven['vocabulary_size']}; "
                   f"report in {Path(cfg.paths.corpus_dir) / SEVEN_DIR / 'report.json'}")


@cli.command()
@click.option("--forms", default=None,
              help=FORMS_HELP)
@click.pass_context
@friendly
def clean(ctx, forms):
    """Rebuild corpus/ from the raw records already in crawler/raw/.

    \b
    Example:
      poetry-lstm clean --forms wujue,wulv,wugu
    """
    cfg = config_of(ctx)
    if forms:
        cfg = cfg.replace("clean", forms=[f.strip() for f in forms.split(",") if f.strip()])
    _clean(cfg)


@cli.command()
@click.option("--mode", type=click.Choice(MODES), default=None,
              help=f"Input features.  [default: {DEFAULTS.train.mode}]")
@click.option("--fine-tune-vectors", is_flag=True, default=None, help="word2vec: let the skip-gram vectors learn too.")
@click.option("--retrain-vectors", is_flag=True, help="word2vec: train new vectors even if matching ones exist.")
@click.option("--resume", is_flag=True, help="Continue a stopped run from its last checkpoint.")
@click.option("--init-from", "init_from", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Start a new run from the weights of this model folder (given twice: their mean), e.g. a shipped "
                   "model trained further; same corpus, vocabulary and network. Its epochs count from 1 again.")
@click.option("--backward", is_flag=True, default=None,
              help="Train the backward scorer (poems read from the end) into models/backward/.")
@click.option("--form", type=click.Choice([*FORMS, "both"]), default=None,
              help="wujue (五绝, the default) learns corpus/ into models/<mode>/; qijue (七绝) learns corpus/qijue/ "
                   "into models/qijue/<mode>/; both pretrains one network on both corpora (checkpoints in "
                   "models/.train-joint-<mode>/), then fine-tunes a copy for each form into those two folders.")
@setting("train", "epochs", "Upper bound on epochs; early stopping may end sooner")
@setting("model", "units", "LSTM units per layer")
@setting("model", "layers", "Stacked LSTM layers")
@setting("model", "dropout", "Dropout between layers and before the softmax")
@setting("train", "learning_rate", "Adam's learning rate while pretraining")
@setting("train", "sampled_softmax", "Pretraining: a sampled softmax of this many characters a step; 0 = the full one")
@setting("train", "fine_tune_epochs", "Epochs on real 五绝 after pretraining; 0 = none")
@setting("train", "batch_size", "Windows per step")
@setting("train", "max_minutes", "Stop pretraining after the epoch that passes this many minutes; 0 = no limit")
@setting("train", "seed", "The one seed: Python, NumPy, TensorFlow")
@click.pass_context
@friendly
def train(ctx, mode, fine_tune_vectors, retrain_vectors, resume, init_from, backward, form, epochs, units, layers,
          dropout, learning_rate, sampled_softmax, fine_tune_epochs, batch_size, max_minutes, seed):
    """Train a next-character LSTM on corpus/ into models/<mode>/ (with --backward, models/backward/;
    with --form qijue, on corpus/qijue/ into models/qijue/<mode>/; with --form both, one network on both,
    fine-tuned into both folders).

    Needs the train extra: pip install -e ".[train]".

    \b
    Examples:
      poetry-lstm train --mode word2vec
      poetry-lstm train --mode onehot --resume
      poetry-lstm train --mode word2vec --max-minutes 75 --dropout 0.2
      poetry-lstm train --mode word2vec --backward
      poetry-lstm train --mode word2vec --form qijue
      poetry-lstm train --mode word2vec --form both --units 384 --dropout 0.2
      poetry-lstm train --mode word2vec --form both --units 512 --dropout 0.05 --learning-rate 0.0003 \\
          --sampled-softmax 1024 --epochs 5 --init-from models/word2vec --init-from models/qijue/word2vec
    """
    cfg = with_flags(config_of(ctx), "train", mode=mode, fine_tune_vectors=fine_tune_vectors, epochs=epochs,
                     learning_rate=learning_rate, sampled_softmax=sampled_softmax,
                     fine_tune_epochs=fine_tune_epochs, batch_size=batch_size, max_minutes=max_minutes, seed=seed)
    cfg = with_flags(cfg, "model", units=units, layers=layers, dropout=dropout, reverse=backward)
    require_training_extra("train")
    from .distributed import start_distribution
    from .network import import_keras
    from .train import train as run_training
    start_distribution()  # before any TensorFlow op: several workers (TF_CONFIG) configure the runtime first
    import_keras()
    command = "poetry-lstm " + " ".join(sys.argv[1:])
    if form == "both":
        from .joint import train_joint
        train_joint(cfg, cfg.train.mode, resume=resume, retrain_vectors=retrain_vectors, command=command,
                    log=lambda msg: click.echo(msg), init_from=init_from)
        return
    run_training(cfg, cfg.train.mode, form=form or "wujue", resume=resume, retrain_vectors=retrain_vectors,
                 command=command, log=lambda msg: click.echo(msg), init_from=init_from)


@cli.command()
@click.argument("ratings", nargs=-1, type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(MODES), default=None,
              help=f"The 五绝 model to tune, models/<mode>.  [default: {DEFAULTS.train.mode}]")
@click.option("--from", "source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Tune the model in this folder instead of models/<mode> itself (the result still goes there).")
@click.option("--resume", is_flag=True, help="Continue a stopped run from its last finished epoch.")
@setting("prefer", "epochs", "Epochs over all rated pairs")
@setting("prefer", "beta", "How far from the model as it was the preference may pull it")
@setting("prefer", "learning_rate", "Adam's learning rate")
@setting("prefer", "anchor", "Weight of the loss on real training 五绝 beside the preference")
@setting("prefer", "min_gap", "Two poems rated at least this far apart make a pair")
@click.pass_context
@friendly
def prefer(ctx, ratings, mode, source, resume, epochs, beta, learning_rate, anchor, min_gap):
    """Tune the trained 五绝 model toward the poems a reader rated higher, into models/<mode>/ again.

    RATINGS are rated sheets of training first lines (`bench/preference.py sheet --split train`, each folder
    with the reader's answers.json), or folders holding them; by default [prefer] ratings,
    docs/readings/ratings. For every two poems of one first line rated apart, the tuning raises the log p of
    the better one's lines 2–4 against the other's, measured from where the model started (direct preference
    optimisation), while the loss on real training poems holds it to verse. Needs the corpus and the train
    extra: pip install -e ".[train]".

    \b
    Examples:
      poetry-lstm prefer
      poetry-lstm prefer docs/readings/ratings --from /tmp/base/word2vec --epochs 2
      poetry-lstm prefer --resume
    """
    cfg = with_flags(config_of(ctx), "prefer", epochs=epochs, beta=beta, learning_rate=learning_rate, anchor=anchor,
                     min_gap=min_gap)
    require_training_extra("prefer", ("tensorflow",))
    from .network import import_keras
    from .prefer import prefer as tune_on_preferences

    import_keras()
    tune_on_preferences(cfg, mode or cfg.train.mode, list(ratings) or [Path(cfg.prefer.ratings)], source=source,
                        resume=resume, command="poetry-lstm " + " ".join(sys.argv[1:]),
                        log=lambda msg: click.echo(msg))


def _models_dir(cfg: Config, mode: str, form: str = "wujue"):
    """models/<mode>, or a 七绝 model's models/qijue/<mode>."""
    return Path(cfg.for_form(form).paths.models_dir) / mode


def _breaks_by_line(breaks) -> dict[int, list[int]]:
    by_line: dict[int, list[int]] = {}
    for line, char in sorted(breaks):
        by_line.setdefault(line, []).append(char)
    return by_line


def _print_poem(poem, index: int) -> None:
    mark = lambda ok: "✓" if ok else ("-" if ok is None else "✗")
    click.echo(f"[{index}]" + (f"  {poem.form}" if poem.form else ""))
    for line, end in zip(poem.lines, "，。，。"):
        click.echo(f"    {line}{end}")
    c = poem.checks
    click.echo(f"    {mark(c['form'])} form  {mark(c['tone'])} tone  {mark(c['rhyme'])} rhyme  "
               f"{mark(None if c['copied'] is None else not c['copied'])} new   score {poem.score:.2f}")
    for line, chars in _breaks_by_line(poem.breaks).items():
        click.echo(f"    line {line} breaks {poem.form} at character {', '.join(map(str, chars))}")
    for w in poem.warnings + poem.notes:
        click.echo(f"    note: {w}")


def _poem_json(p) -> dict:
    return {"text": p.text, "lines": p.lines, "score": p.score, "form": p.form,
            "checks": {k: p.checks[k] for k in ("form", "tone", "tone_245", "rhyme", "copied")},
            "breaks": [list(b) for b in p.breaks], "warnings": p.warnings, "notes": p.notes}


def _result_json(result, mode: str) -> dict:
    return {"first_line": result.first_line, "mode": mode, "poems": [_poem_json(p) for p in result.poems],
            "warnings": result.warnings}


def _print_result(result, first_line: str | None) -> None:
    if first_line is not None and result.first_line != first_line.strip().rstrip("，,。."):
        click.echo(f"first line read as {result.first_line}")
    for w in result.warnings:
        click.echo(f"note: {w}")
    for i, poem in enumerate(result.poems, 1):
        _print_poem(poem, i)


def _load_for_generation(cfg: Config, mode: str, overuse: bool = True, novelty: bool = True, form: str = "wujue"):
    from .loading import load_model
    from .stepper import limit_blas_threads

    limit_blas_threads(1)  # one poem is many tiny matrix products: extra BLAS threads only spin
    # NumPy weights: no TensorFlow
    return load_model(_models_dir(cfg, mode, form), overuse=overuse, line_hashes=novelty)


def _read_first_lines(path: str) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line of a UTF-8 file."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # -sig: Notepad's byte-order mark is no character
    except FileNotFoundError:
        raise RefusedInput(f"The file {path} does not exist; "
                           "pass --file a text file with one first line a line.") from None
    except UnicodeDecodeError:
        raise RefusedInput(f"The file {path} is not UTF-8 text; save it as UTF-8 and run the command again.") from None
    except OSError as exc:
        raise RefusedInput(f"Cannot read {path} ({exc.strerror or exc}); pass --file a readable text file.") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise RefusedInput(f"The file {path} holds no first lines; write one a line, e.g. 床前明月光.")
    return lines


def _generate_file(cfg: Config, mode: str, path: str, settings_of, as_json: bool, form: str | None) -> None:
    """One poem set per first line; a refused line is reported in its place and the run goes on. A line's
    length picks its model (five: 五绝, seven: 七绝), each loaded when a line first needs it, unless
    `form` forces one; `settings_of(form)` gives the decoder settings for that form's model."""
    from tqdm import tqdm

    from .generate import complete_poem, normalize_line

    lines = _read_first_lines(path)
    models, done = {}, 0  # form → its model, or the error that loading it gave (said again on each of its lines)

    def model_for(text: str):
        name = form or shape_for(len(normalize_line(text))).name
        if name not in models:
            try:
                models[name] = _load_for_generation(cfg, mode, novelty=settings_of(name).novelty, form=name)
            except PoetryError as exc:  # no 七绝 model: the five-character lines still get their poems
                models[name] = exc
        if isinstance(models[name], PoetryError):
            raise models[name]
        return models[name]

    with tqdm(total=len(lines), desc="first lines", unit="line", file=sys.stderr) as bar:
        for number, text in lines:
            try:
                trained = model_for(text)
                result = complete_poem(trained, text, settings_of(trained.shape.name))
            except PoetryError as exc:  # refused input, or no model of that line's form
                out = {"line": number, "input": text, "error": str(exc)} if as_json else f"line {number}: {exc}"
            else:
                done += 1
                out = {"line": number, **_result_json(result, mode)} if as_json else result
            with tqdm.external_write_mode(file=sys.stdout):  # the bar steps aside, then redraws below
                if as_json:
                    click.echo(json.dumps(out, ensure_ascii=False))
                elif isinstance(out, str):
                    click.echo(out)
                else:
                    click.echo(f"line {number}: {text.strip()}")
                    _print_result(out, text)
            bar.update()
    if not as_json:
        click.echo(SCORE_NOTE)
    if not done:
        raise RefusedInput(f"No line of {path} gave a poem; "
                           "each must be five or seven Chinese characters, e.g. 床前明月光.")


@cli.command()
@click.argument("first_line", required=False)
@setting("generate", "n", "How many poems")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help=f"Which model answers.  [default: {DEFAULTS.generate.mode}]")
@setting("generate", "temperature", "Sampling temperature, for every model when given"
         + "".join(f" (unset: {m} {t:g})" for m, t in DEFAULTS.generate.model_temperature.items())
         + "; below 1 safer, above 1 wilder")
@setting("generate", "top_k", "Sample among the K likeliest allowed characters; 0 = all")
@setting("generate", "top_p", "Nucleus sampling: sample within this share of the probability mass")
@setting("generate", "beam", "Beam width; 1 = sampling")
@setting("generate", "seed", "Same seed, same poems; any integer")
@click.option("--no-tones", is_flag=True, help="Do not constrain 平仄.")
@click.option("--no-rhyme", is_flag=True, help="Do not constrain the rhyme.")
@click.option("--no-novelty", is_flag=True, help="Allow training lines and repeated characters.")
@click.option("--acrostic", default=None, help="藏头诗: four characters that start the four lines.")
@form_option("Force the form: wujue (五绝) or qijue (七绝). A first line's length picks it without the flag; "
             "--acrostic and --theme write 五绝 unless given qijue.")
@click.option("--theme", default=None, help="A theme in modern Chinese, e.g. 思念故乡的秋夜.")
@click.option("--file", "lines_file", type=click.Path(dir_okay=False), default=None,
              help="Finish every first line of this UTF-8 file, one a line (blank lines skipped).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON instead of text; with --file, one object a line (JSON Lines).")
@click.pass_context
@friendly
def generate(ctx, first_line, n, mode, temperature, top_k, top_p, beam, seed, no_tones, no_rhyme, no_novelty, acrostic,
             form, theme, lines_file, as_json):
    """Finish a quatrain from its first line (or write one from heads or a theme).

    A five-character first line makes a 五绝, a seven-character one a 七绝 (from models/qijue/).

    Each poem shows its tone form, its checks (✓ kept, ✗ broken), the characters of the given
    text that break the form (the given text is never changed), and its score: the mean
    log-probability per generated character under the model (higher is likelier).

    With --file, a refused line gets its error in its place (`line N: ...`, or an object with
    "error" and "line" under --json) and the run goes on; a progress bar goes to stderr. The
    exit code is 0 when at least one line got a poem, 2 when every line was refused.

    \b
    Examples:
      poetry-lstm generate 床前明月光
      poetry-lstm generate 床前明月光 --n 5 --beam 8 --json
      poetry-lstm generate 朝辞白帝彩云间
      poetry-lstm generate --acrostic 春夏秋冬
      poetry-lstm generate --acrostic 春夏秋冬 --form qijue
      poetry-lstm generate --theme 思念故乡的秋夜
      poetry-lstm generate --file first_lines.txt --json > poems.jsonl
    """
    from .generate import acrostic_poem, complete_poem, normalize_line, theme_poem

    cfg = config_of(ctx)
    g = with_flags(cfg, "generate", mode=mode, n=n, temperature=temperature, top_k=top_k, top_p=top_p,
                   beam=beam, seed=seed).generate
    if sum(x is not None for x in (first_line, acrostic, theme, lines_file)) != 1:
        raise RefusedInput("Give exactly one of: a first line (e.g. 床前明月光), --acrostic 春夏秋冬, "
                           "--theme 思念故乡的秋夜, or --file FIRST_LINES.txt.")

    def settings_of(form: str):  # the config's settings for the model of `form` (its own temperature), flags over them
        return dataclasses.replace(g.settings(model_key(g.mode, form)), tones=g.tones and not no_tones,
                                   rhyme=g.rhyme and not no_rhyme, novelty=g.novelty and not no_novelty)

    if lines_file is not None:
        return _generate_file(cfg, g.mode, lines_file, settings_of, as_json, form)
    if first_line is not None:
        form = form or shape_for(len(normalize_line(first_line))).name  # refuse bad input before the model loads
    form = form or "wujue"
    settings = settings_of(form)
    trained = _load_for_generation(cfg, g.mode, novelty=settings.novelty, form=form)
    if acrostic is not None:
        result = acrostic_poem(trained, acrostic, settings)
    elif theme is not None:
        from .vectors import load_vectors_fast

        vec_dir = _models_dir(cfg, "word2vec", form) / "vectors"
        result = theme_poem(trained, theme, load_vectors_fast(vec_dir) if vec_dir.exists() else None, settings)
    else:
        result = complete_poem(trained, first_line, settings)
    if as_json:
        out = _result_json(result, g.mode)
        if theme is not None:
            out.update(keywords=result.keywords, keyword_used=result.keyword_used, plan=result.plan)
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if theme is not None:
        click.echo(f"keywords: {' '.join(result.keywords)}; plan: "
                   + " · ".join(f"line {i} {step}" for i, step in enumerate(result.plan, 1)))
    _print_result(result, first_line)
    click.echo(SCORE_NOTE)


def _print_report(report) -> None:
    click.echo(f"{report.kind}  {report.form_name}  ({report.rules} rules)  {'✓ 合律' if report.ok else '✗ 有误'}")
    size = len(report.chars) // 4
    by_line = [report.chars[i:i + size] for i in range(0, 4 * size, size)]
    for chars, end in zip(by_line, "，。，。"):
        tones = " ".join({"平": "平", "仄": "仄", "both": "平仄", "unknown": "？"}[c["tone"]] for c in chars)
        wants = " ".join(c["want"] for c in chars)
        click.echo(f"    {''.join(c['char'] for c in chars)}{end}   {tones}   (form: {wants})")
    for p in report.problems:
        where = f"line {p.line}" + (f", character {p.char}" if p.char else "")
        click.echo(f"  [{p.severity}] {where} {p.name}: {p.message}")
        if p.suggestions:
            click.echo(f"      try: {' '.join(p.suggestions)}")


def _read_poems(path: str) -> list[tuple[int, str]]:
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0
    if size > 1_000_000:
        raise RefusedInput(f"The file {path} is {size:,} bytes; --file takes up to 1 MB of poems, one a line.")
    lines = _read_first_lines(path)
    return lines


def _desk_model(cfg: Config, mode: str | None, wanted: bool = True, form: str = "wujue"):
    """The model of `form` that ranks suggestions, or None when it is not there (the checker still runs)."""
    from .modeldir import missing_model_error

    folder = _models_dir(cfg, mode or cfg.generate.mode, form)
    if not wanted or missing_model_error(folder) is not None:
        return None
    return _load_for_generation(cfg, mode or cfg.generate.mode, overuse=False, form=form)


def _form_of_poem(text: str) -> str:
    """wujue or qijue, by the length of a poem as `checker.read_poem` reads it (InputError when it is none)."""
    from .checker import read_poem

    return shape_of_text(read_poem(text)).name


@cli.command()
@click.argument("text", required=False)
@click.option("--file", "poem_file", type=click.Path(dir_okay=False), default=None,
              help="Check every poem of this UTF-8 file, one a line (blank lines skipped).")
@click.option("--lenient", is_flag=True, help="Accept the licences poets dispute (三仄尾, 仄平仄平仄, a rhyme through "
                                               "a merged simplified character).")
@click.option("--suggest/--no-suggest", default=True, show_default=True,
              help="Rank up to 10 repairs for each problem at a character with the model.")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help=f"Which model ranks the suggestions.  [default: {DEFAULTS.generate.mode}]")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text; with --file, one object a line.")
@click.pass_context
@friendly
def check(ctx, text, poem_file, lenient, suggest, mode, as_json):
    """Check a 五绝 or a 七绝: each character's 平仄, the form it fits best, and every problem at its place.

    Problems: a tone out of pattern, 失对, 失粘, 孤平, 三平尾, 三仄尾, an unrescued 大拗, 落韵,
    重字 (a warning) and characters missing from 平水韵. Licences (拗救, 孤雁出群) and 多音字 are
    notes. Each problem at a character comes with up to 10 characters that repair it, ranked by
    the model's score of the whole poem with the character in place (a 七绝's by the 七绝 model in
    models/qijue/, when there is one). The exit code is 0 when no poem has an error, 1 when one has.

    \b
    Examples:
      poetry-lstm check 白日依山尽，黄河入海流。欲穷千里目，更上一层楼。
      poetry-lstm check 朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。
      poetry-lstm check "白日依山尽 黄河入海流 欲穷千里目 更上一层天" --json
      poetry-lstm check --file my_poems.txt --json > reports.jsonl
    """
    from .checker import read_poem
    from .desk import check_poem

    if (text is None) == (poem_file is None):
        raise RefusedInput("Give a poem (e.g. 白日依山尽，黄河入海流。欲穷千里目，更上一层楼。) or --file POEMS.txt.")
    rules = "lenient" if lenient else "strict"
    cfg = config_of(ctx)
    if poem_file is None:
        read_poem(text)  # refuse bad input before the model loads
        poems = [(None, text)]
    else:
        poems = _read_poems(poem_file)
    models: dict = {}  # form → its ranking model (or None), loaded when a poem of that form first needs it
    failed = refused = 0
    for number, raw in poems:
        try:
            form = _form_of_poem(raw)
            if form not in models:
                models[form] = _desk_model(cfg, mode, suggest, form)
            report = check_poem(models[form], raw, rules)
        except InputError as exc:
            if len(poems) == 1:  # nothing else to report: the one sentence is the answer
                raise
            refused += 1
            click.echo(json.dumps({"line": number, "input": raw, "error": str(exc)}, ensure_ascii=False) if as_json
                       else f"line {number}: {exc}")
            continue
        failed += not report.ok
        if as_json:
            out = ({"line": number} if number else {}) | report.to_json()
            click.echo(json.dumps(out, ensure_ascii=False, indent=None if number else 2))
        else:
            if number:
                click.echo(f"line {number}:")
            _print_report(report)
    if refused == len(poems):
        raise RefusedInput(f"No line of {poem_file} is a 五绝 or a 七绝; write one poem a line, e.g. "
                           "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。")
    if failed:
        ctx.exit(1)


@cli.command()
@click.argument("text")
@click.option("--line", "line_no", type=click.IntRange(1, 4), required=True, help="Which line to rewrite (1–4).")
@setting("generate", "n", "How many versions")
@setting("generate", "seed", "Same seed, same versions; any integer")
@click.option("--lenient", is_flag=True, help="Write by the lenient rules (三仄尾 and 仄平仄平仄 allowed).")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help=f"Which model writes.  [default: {DEFAULTS.generate.mode}]")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_context
@friendly
def revise(ctx, text, line_no, n, seed, lenient, mode, as_json):
    """Rewrite one line of a 五绝 (or of a 七绝, with the 七绝 model) and keep the other three.

    Each version keeps the form's tones and the rhyme, brings no 重字 and copies no training
    line; versions are ranked by the model's score of the whole poem (mean log-probability per
    character). Line 1 can be rewritten too.

    \b
    Examples:
      poetry-lstm revise 白日依山尽，黄河入海流。欲穷千里目，更上一层楼。 --line 3
      poetry-lstm revise "白日依山尽 黄河入海流 欲穷千里目 更上一层楼" --line 1 --n 5 --json
      poetry-lstm revise 朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。 --line 3
    """
    from .desk import revise_line

    cfg = config_of(ctx)
    g = with_flags(cfg, "generate", mode=mode, n=n, seed=seed).generate
    form = _form_of_poem(text)  # refuse bad input before the model loads
    trained = _load_for_generation(cfg, g.mode, form=form)
    settings = g.settings(model_key(g.mode, form))
    if lenient:
        settings = dataclasses.replace(settings, rules="lenient")
    revision = revise_line(trained, text, line_no, g.n, settings)
    if as_json:
        click.echo(json.dumps({"text": revision.text, "line": line_no, "form": revision.form, "mode": g.mode,
                               "poems": [_poem_json(p) for p in revision.poems], "note": revision.note},
                              ensure_ascii=False, indent=2))
        return
    click.echo(f"line {line_no} of {revision.text} ({revision.form}), rewritten:")
    for i, poem in enumerate(revision.poems, 1):
        _print_poem(poem, i)
    if revision.note:
        click.echo(f"note: {revision.note}")
    click.echo("score: mean log-probability per character of the whole poem; higher is likelier.")


@cli.command()
@click.argument("query")
@click.option("--limit", type=click.IntRange(1), default=60, show_default=True, help="Characters shown for a group.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_context
@friendly
def rhymes(ctx, query, limit, as_json):
    """A 平声 rhyme group's characters, most used first; or one character's tones and groups.

    \b
    Examples:
      poetry-lstm rhymes 东          (also 一东, 上平一东)
      poetry-lstm rhymes 机
    """
    from .desk import rhymes as rhymes_of
    from .modeldir import Vocab

    cfg = config_of(ctx)
    vocab_file = _models_dir(cfg, cfg.generate.mode) / "vocab.json"
    counts = Vocab.load(vocab_file) if vocab_file.exists() else None
    found = rhymes_of(query, counts)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
    elif "group" in found:
        shown = found["chars"][:limit]
        click.echo(f"{found['group']}: {len(found['chars'])} characters, most used first")
        click.echo(" ".join(shown) + (" …" if len(found["chars"]) > limit else ""))
    else:
        click.echo(f"{found['char']}: tone {found['tone']}; groups {'、'.join(found['groups'])}")
        if found["rhymes_in"] and found["sure_in"] != found["rhymes_in"]:
            click.echo(f"  rhymes for sure in {'、'.join(found['sure_in']) or 'no group'}: a simplified character "
                       "that stands for traditional ones in other groups")


@cli.command()
@click.option("--mode", type=click.Choice(["word2vec", "onehot"]), default=None,
              help="One model (default: every model present).")
@click.option("--file", "poem_file", type=click.Path(dir_okay=False), default=None,
              help="Score these quatrains (one a line) instead of the test split; needs no corpus, "
              "and says what it leaves out without one.")
@click.option("--generate", "with_generation", is_flag=True,
              help="Also complete the poems' first lines (the [generate] defaults, beam 8, every constraint off) "
              "and report the poems beside the real ones.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N poems (quick checks).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@form_option("wujue (五绝, the default): models/<mode> on corpus/'s test split; qijue (七绝): models/qijue/<mode> "
             "on corpus/qijue/'s.")
@click.pass_context
@friendly
def evaluate(ctx, mode, poem_file, with_generation, limit, as_json, form):
    """Perplexity and accuracy of lines 2–4 given line 1, beside a trigram baseline.

    With --generate, the completed poems beside the real ones: form, tone and rhyme, copies, and
    whether they read as poems (a discriminator's accuracy, a 4-gram judge's perplexity, stock
    lines, coherence with line 1, over-used characters, stutters and echoes).

    \b
    Examples:
      poetry-lstm evaluate --mode onehot --json
      poetry-lstm evaluate --file my_poems.txt
      poetry-lstm evaluate --generate --limit 200
      poetry-lstm evaluate --form qijue --generate --json
    """
    from .evaluate import format_report, run_evaluation

    # Perplexity needs the Keras model; the discriminator of --generate needs scikit-learn.
    require_training_extra("evaluate", ("tensorflow", "sklearn") if with_generation else ("tensorflow",))
    report = run_evaluation(config_of(ctx).for_form(form or "wujue"), mode, poem_file, with_generation, limit,
                            log=lambda msg: click.echo(msg, err=True))
    if not as_json:
        click.echo(format_report(report))
        return
    # The top level is the better model's scores; with several models each one is under "models".
    results = report["models"]
    out = dict(min(results.values(), key=lambda r: r["perplexity"]))
    if len(results) > 1:
        out["models"] = results
    out.update({k: v for k, v in report.items() if k != "models"})
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


@cli.command()
@click.option("--mode", type=click.Choice(MODES), default=None, help="One model (default: every model present).")
@setting("train", "overuse_poems", "Training 五绝 whose first lines are completed")
@form_option("wujue (五绝, the default): models/<mode>; qijue (七绝): models/qijue/<mode>, on corpus/qijue/'s poems.")
@click.pass_context
@friendly
def calibrate(ctx, mode, overuse_poems, form):
    """Measure which characters a model's decoder over-uses, into models/<mode>/overuse.json.

    Completes the first lines of real training 五绝 with the [generate] defaults and compares each
    character's count in lines 2–4 with the real poems'; the decoder then holds back what it
    over-uses ([generate] overuse_penalty). `train` does this itself; run it after changing the
    [generate] defaults. Valid and test poems are never used.

    \b
    Example:
      poetry-lstm calibrate --mode word2vec
    """
    from .calibrate import calibrate as measure_overuse
    from .clean import load_corpus, texts_by_split
    from .evaluate import BUILD_CORPUS, models_present
    from .modeldir import OVERUSE_FILE

    cfg = with_flags(config_of(ctx), "train", overuse_poems=overuse_poems).for_form(form or "wujue")
    modes = models_present(cfg, mode)
    if not (Path(cfg.paths.corpus_dir) / "quatrains.jsonl").exists():
        raise UserError(f"No corpus in {cfg.paths.corpus_dir}: the measure completes training poems; "
                        f"build it with {BUILD_CORPUS}.")
    if cfg.train.overuse_poems < 1:
        raise UserError("--overuse-poems must be at least 1 to measure anything.")
    poems = texts_by_split(load_corpus(cfg), False)["train"]
    for m in modes:
        # the file this replaces may be the broken one; cfg's models_dir is already the form's
        trained = _load_for_generation(cfg, m, overuse=False)
        record = measure_overuse(trained, poems, cfg, log=lambda msg: click.echo(msg, err=True))
        click.echo(f"{m}: {len(record['overuse'])} over-used characters written to {trained.path / OVERUSE_FILE}")


def main():
    cli(obj={})


if __name__ == "__main__":
    sys.exit(main())
