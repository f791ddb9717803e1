"""poetry-lstm: finish a five-character quatrain from its first line (see README.md).

    from poetry_lstm import load_model, complete_poem
    model = load_model("models/word2vec")
    result = complete_poem(model, "孤舟明月夜", seed=0)   # config/default.toml's settings, seed 0
    print(result.poems[0].text)

`acrostic_poem(model, "春夏秋冬")` and `theme_poem(model, "思念故乡的秋夜")` are the other two
faces; `DecodeSettings.defaults(model.mode)` holds the settings, changed with
`dataclasses.replace` or as keyword overrides (`n=1, beam=8`). The names load on first use, so
`import poetry_lstm.config` stays light.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "loading", "TrainedModel": "loading",
    "complete_poem": "generate", "acrostic_poem": "generate", "theme_poem": "generate", "Result": "generate",
    "Poem": "decoder", "DecodeSettings": "config", "PoetryError": "errors", "InputError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'poetry_lstm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
