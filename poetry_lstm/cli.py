"""The `poetry-lstm` command: `poetry-lstm generate 床前明月光`.

A click group; each command's docstring is its --help. User mistakes raise click exceptions
(one sentence, non-zero exit); PoetryError from the library becomes one too, never a traceback.
"""
from __future__ import annotations

import functools
import json
import sys
import time

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
@click.option("--max-pages", type=int, default=None, help="gushiwen: list pages per dynasty at most.")
@click.option("--delay", type=float, default=None, help="gushiwen: seconds between requests (at least).")
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


def main():
    cli(obj={})


if __name__ == "__main__":
    sys.exit(main())
