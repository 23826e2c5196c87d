"""Reading the generator out of a training checkpoint (the streaming release's ``model.pt``), tensors only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.checkpoints import (
    TINY_CHUNK_CAUSAL_YAML,
    TINY_STREAMING,
    official_layout,
    same_state,
    save_training_checkpoint,
    tiny_model,
    tiny_registry,  # noqa: F401  (fixture)
    training_checkpoint,
)

from sana_wm.errors import InputError
from sana_wm.models import preset
from sana_wm.models.checkpoint_io import load_transformer, official_to_state_dict, read_checkpoint
from sana_wm.models.training_checkpoint import find_generator, read_training_checkpoint

RAN: list[str] = []


def _record(what: str) -> str:
    RAN.append(what)
    return what


class Payload:
    """An object whose unpickling would call :func:`_record`: it must never run."""

    def __reduce__(self):
        return (_record, ("unpickled",))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models():
    """The generator (bf16, as released) and a different critic."""
    return tiny_model(1, TINY_STREAMING, torch.bfloat16), tiny_model(2, TINY_STREAMING, torch.bfloat16)


@pytest.fixture(scope="module")
def saved(models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training checkpoint of ``models`` in the streaming release's layout (``sana_dit/model.pt``)."""
    root = tmp_path_factory.mktemp("streaming")
    return save_training_checkpoint(root / "sana_dit" / "model.pt", training_checkpoint(*models))


def test_the_generator_is_found_and_loads_bit_for_bit(saved: Path, models) -> None:
    generator, critic = models
    found = read_training_checkpoint(saved)
    assert (found.where, found.ema) == ("generator", False)
    assert set(found.state) == {k.removeprefix("model.") for k in official_layout(generator)}
    loaded = load_transformer(saved, config=TINY_STREAMING, training_checkpoint=True)
    assert same_state(loaded, generator) and not same_state(loaded, critic)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


def test_without_a_config_the_streaming_release_is_assumed(saved: Path) -> None:
    contents = read_checkpoint(saved, training_checkpoint=True)
    assert contents.config == preset("sana_wm_streaming_1600m_720p")
    assert contents.config.chunk_size == 3 and "streaming release" in contents.config_source
    assert (contents.kind, contents.detail) == ("training checkpoint", "generator at generator")
    with pytest.raises(InputError, match=r"shape-mismatched \(t_embedder.linear_1.weight \(224, 256\) vs"):
        load_transformer(saved, training_checkpoint=True)  # tiny weights, release architecture


@pytest.mark.usefixtures("tiny_registry")
def test_a_config_yaml_above_the_checkpoint_is_read(tmp_path: Path, saved: Path, models) -> None:
    path = tmp_path / "sana_dit" / "model.pt"
    path.parent.mkdir()
    path.symlink_to(saved)
    (tmp_path / "config.yaml").write_text(TINY_CHUNK_CAUSAL_YAML)
    contents = read_checkpoint(path, training_checkpoint=True)
    assert contents.config == TINY_STREAMING and contents.config_source == str(tmp_path / "config.yaml")
    assert same_state(load_transformer(path, training_checkpoint=True), models[0])


def _wrap(state: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """Insert a wrapper module's name (torch.compile, FSDP) after the ``model.`` prefix of every key."""
    return {k.replace("model.", f"model.{part}", 1): v for k, v in state.items()}


@pytest.mark.parametrize(
    ("layout", "where", "ema"),
    [
        (lambda g, c: g, "(top level)", False),
        (lambda g, c: {"state_dict": g, "step": torch.tensor(5)}, "state_dict", False),
        (lambda g, c: {"module": {k.removeprefix("model."): v for k, v in g.items()}}, "module", False),
        (lambda g, c: {"generator": {"model": g}, "fake_score": c}, "generator/model", False),
        (
            lambda g, c: {
                **{f"generator.{k}": v for k, v in g.items()},
                **{f"critic.{k}": v for k, v in c.items()},
            },
            "generator",
            False,
        ),
        (lambda g, c: {"generator_ema": g, "critic": c}, "generator_ema", True),
        (lambda g, c: {"generator": g, "generator_ema": c, "real_score": c}, "generator", False),
        (lambda g, c: {"generator": _wrap(g, "_orig_mod."), "critic": c}, "generator", False),
        (lambda g, c: {"generator": _wrap(g, "_fsdp_wrapped_module."), "critic": c}, "generator", False),
    ],
)
def test_layouts(layout, where: str, ema: bool, models) -> None:
    generator, critic = (official_layout(m) for m in models)
    found = find_generator(layout(generator, critic), source="ckpt")
    assert (found.where, found.ema) == (where, ema)
    want = official_to_state_dict(generator)
    got = official_to_state_dict(found.state)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        (lambda g, c: {"generator": g, "model": c}, r"several generator state dicts \(generator, model\)"),
        (
            lambda g, c: {"critic": c, "optimizer": {"state": {}}},
            r"holds no generator state dict \(top-level k",
        ),
        (lambda g, c: [g], r"holds a list, not a mapping of tensors"),
        (lambda g, c: {"fake_score": g, "real_score": c, "teacher": g}, r"holds no generator state dict"),
    ],
)
def test_no_single_generator_is_an_error(checkpoint, message: str, models) -> None:
    generator, critic = (official_layout(m) for m in models)
    with pytest.raises(InputError, match=message):
        find_generator(checkpoint(generator, critic), source="ckpt")


def test_a_pickle_needing_other_classes_is_refused_without_running_it(tmp_path: Path, models) -> None:
    path = tmp_path / "model.pt"
    torch.save({"generator": official_layout(models[0]), "extra": Payload()}, path)
    RAN.clear()
    with pytest.raises(InputError) as err:
        read_training_checkpoint(path)
    message = str(err.value)
    assert message.startswith(
        f"checkpoint: {path} is not a tensors-only checkpoint; refusing to unpickle arbitrary objects ("
    )
    assert "_record" in message and "\n" not in message
    assert RAN == []


def test_legacy_torn_and_missing_files(tmp_path: Path, models) -> None:
    legacy, zipped = tmp_path / "legacy.pt", tmp_path / "zipped.pt"
    torch.save({"generator": official_layout(models[0])}, legacy, _use_new_zipfile_serialization=False)
    torch.save({"generator": official_layout(models[0])}, zipped)
    assert same_state(load_transformer(legacy, config=TINY_STREAMING, training_checkpoint=True), models[0])
    for source in (legacy, zipped):
        torn = tmp_path / f"torn_{source.name}"
        torn.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        with pytest.raises(InputError, match=r"^checkpoint: cannot read .*torn_.* as a torch checkpoint \("):
            read_training_checkpoint(torn)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"garbage, not a pickle")
    with pytest.raises(InputError, match=r"^checkpoint: cannot read .*garbage.pt as a torch checkpoint \("):
        read_training_checkpoint(garbage)
    with pytest.raises(InputError, match="does not exist"):
        read_training_checkpoint(tmp_path / "nope.pt")


def test_the_strict_report_covers_training_checkpoints(tmp_path: Path, models) -> None:
    generator = official_layout(models[0])
    del generator["model.final_layer.linear.bias"]
    generator["model.blocks.0.attn.extra"] = torch.zeros(3)
    path = tmp_path / "model.pt"
    torch.save({"generator": generator, "critic": official_layout(models[1])}, path)
    with pytest.raises(InputError) as err:
        load_transformer(path, config=TINY_STREAMING, training_checkpoint=True)
    assert str(err.value) == (
        f"checkpoint {path}: 1 missing (final_layer.linear.bias); 1 unexpected (blocks.0.attn.extra) "
        "(pass strict=False to load only the matching keys)"
    )


def test_normal_loading_still_refuses_pickles(saved: Path) -> None:
    with pytest.raises(
        InputError, match="is a pickle file; sana-wm reads safetensors only .* `sana-wm convert`"
    ):
        load_transformer(saved, config=TINY_STREAMING)
