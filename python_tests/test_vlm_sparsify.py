"""Every method on a tiny LLaVA: what gets pruned, that image tokens reach µ-MoE's norms and the
offline calibration, that restore undoes it all, and the evaluation loop end to end."""
import warnings

import pytest
import transformers
import torch

pytest.importorskip("PIL", reason="the VLM tests write PNG images: pip install pillow")

from helpers_vlm import build_tiny_llava, write_vlm_fixture
from mumoe_ext.reference import wanda_linear
from mumoe_ext.vlm.calibration import load_calibration
from mumoe_ext.vlm.data import load_examples
from mumoe_ext.vlm.generate import generate_predictions
from mumoe_ext.vlm.model import llava_parts, restore
from mumoe_ext.vlm.runner import VLMEvalConfig, evaluate_vlm
from mumoe_ext.vlm.sparsify import sparsify_llava

METHODS = ["magnitude", "wanda", "sparsegpt", "mumoe"]
PARTS = [(False, False), (True, True)]
LANG_LINEAR = "model.language_model.layers.0.mlp.up_proj"
# CLIP's encoder sits under vision_model in transformers 4, directly in the tower in 5
VISION_LINEAR = ("model.vision_tower.encoder.layers.0.mlp.fc1"
                 if transformers.__version__ >= "5" else
                 "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1")
PROJ_LINEAR = "model.multi_modal_projector.linear_1"

pytestmark = pytest.mark.filterwarnings("ignore:mumoe_ext.*not available:RuntimeWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_vlm_fixture(str(tmp_path_factory.mktemp("vlm_sparsify_data")))


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_llava()


@pytest.fixture(scope="module")
def calib(tiny, data_dir):
    return load_calibration(tiny[1], "textvqa", data_dir=data_dir, nsamples=4, seed=0)


def _other_pixels(pixels):
    return torch.randn(pixels.shape, generator=torch.Generator().manual_seed(1))


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _weight(model, name):
    return model.get_submodule(name).weight


def test_llava_parts(tiny):
    assert llava_parts(tiny[0]) == {"language": "model.language_model.layers",
                                    "vision_tower": "model.vision_tower",
                                    "projector": "model.multi_modal_projector"}
    with pytest.raises(TypeError, match="LlavaForConditionalGeneration"):
        llava_parts(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("vision,projector", PARTS, ids=["language", "all-parts"])
@pytest.mark.parametrize("method", METHODS)
def test_each_method_prunes_the_chosen_parts_and_restores(tiny, calib, data_dir, method, vision,
                                                          projector):
    model, processor = tiny
    before = _snapshot(model)
    examples = load_examples("scienceqa", "test", data_dir)[:2]
    sparsify_llava(model, method, 0.5, calib=calib, vision_tower=vision, projector=projector,
                   progress=False)
    try:
        if method == "mumoe":
            kinds = {n: type(model.get_submodule(n)).__name__
                     for n in (LANG_LINEAR, VISION_LINEAR, PROJ_LINEAR)}
            assert kinds[LANG_LINEAR] == "MuMoELinear"
            assert (kinds[VISION_LINEAR] == "MuMoELinear") == vision
            assert (kinds[PROJ_LINEAR] == "MuMoELinear") == projector
        else:
            for name, chosen in ((LANG_LINEAR, True), (VISION_LINEAR, vision),
                                 (PROJ_LINEAR, projector)):
                zeros = float((_weight(model, name) == 0).float().mean())
                assert zeros == (0.5 if chosen else 0.0), name
            if method == "wanda":  # per-row selection: exactly half of every row
                rows = (_weight(model, LANG_LINEAR) != 0).sum(dim=1)
                assert torch.all(rows == _weight(model, LANG_LINEAR).shape[1] // 2)
        assert "lm_head" not in [n for n, m in model.named_modules()
                                 if type(m).__name__ == "MuMoELinear"]
        preds = generate_predictions(model, processor, "scienceqa", examples, max_new_tokens=2,
                                     progress=False)
        assert len(preds) == 2
    finally:
        restore(model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(type(m).__name__ != "MuMoELinear" for m in model.modules())


def test_mumoe_norms_include_the_image_tokens(tiny, data_dir):
    """The first language-model linear is pruned from all prompt tokens, image tokens included:
    its prefill output equals the reference Wanda linear on exactly that input."""
    model, processor = tiny
    from mumoe_ext.vlm.generate import example_prompt
    from mumoe_ext.vlm.inputs import encode

    ex = load_examples("scienceqa", "test", data_dir)[0]
    batch = encode(processor, example_prompt("scienceqa", ex), ex.image)
    n_image = int((batch["input_ids"] == model.config.image_token_id).sum())
    assert n_image == 4
    seen = {}
    name = "model.language_model.layers.0.self_attn.q_proj"
    sparsify_llava(model, "mumoe", 0.5, progress=False)
    try:
        linear = model.get_submodule(name)
        handle = linear.register_forward_hook(lambda m, a, out: seen.update(x=a[0], y=out))
        with torch.no_grad():
            model(**batch, use_cache=True)
        assert seen["x"].shape[1] == batch["input_ids"].shape[1]  # every token, image ones too
        expected = wanda_linear(seen["x"], linear.weight, linear.bias, 0.5)
        torch.testing.assert_close(seen["y"], expected)
        wanda_x = seen["x"]
        # The image shapes the mask: with other pixels, the *text* tokens (same layer-0 input)
        # get a different output, because the norms - and so the kept weights - changed.
        text = batch["input_ids"][0] != model.config.image_token_id
        with torch.no_grad():
            model(**{**batch, "pixel_values": _other_pixels(batch["pixel_values"])},
                  use_cache=True)
        handle.remove()
        assert torch.equal(seen["x"][0, text], wanda_x[0, text])
        assert not torch.allclose(seen["y"][0, text], expected[0, text])
    finally:
        restore(model)


def test_offline_calibration_sees_the_images(tiny, calib):
    """Same text, other pixels: Wanda's language-model masks change."""
    model, _ = tiny
    masks = []
    for batches in (calib, [{**b, "pixel_values": _other_pixels(b["pixel_values"])}
                            for b in calib]):
        sparsify_llava(model, "wanda", 0.5, calib=batches, progress=False)
        masks.append(torch.cat([(_weight(model, n) != 0).flatten() for n in
                                ("model.language_model.layers.0.self_attn.q_proj", LANG_LINEAR)]))
        restore(model)
    assert not torch.equal(masks[0], masks[1])


def test_mumoe_at_full_density_matches_dense(tiny, data_dir):
    model, processor = tiny
    examples = load_examples("textvqa", "validation", data_dir)[:2]
    dense = generate_predictions(model, processor, "textvqa", examples, max_new_tokens=3,
                                 progress=False)
    sparsify_llava(model, "mumoe", 1.0, vision_tower=True, projector=True, progress=False)
    try:
        full = generate_predictions(model, processor, "textvqa", examples, max_new_tokens=3,
                                    progress=False)
    finally:
        restore(model)
    assert full == dense


def test_bad_arguments(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="method must be one of"):
        sparsify_llava(model, "random", 0.5)
    with pytest.raises(ValueError, match="calib"):
        sparsify_llava(model, "sparsegpt", 0.5, vision_tower=True)
    with pytest.raises(ValueError, match="density"):
        sparsify_llava(model, "wanda", 1.5, calib=[], vision_tower=True)
    with pytest.raises(ValueError, match="densities"):
        VLMEvalConfig(task="textvqa", densities=(0.0,)).validate()
    with pytest.raises(ValueError, match="task must be one of"):
        VLMEvalConfig(task="gqa").validate()
    with pytest.raises(ValueError, match="template"):
        VLMEvalConfig(task="textvqa", template="chatml").validate()
    with pytest.raises(ValueError, match="nsamples"):
        VLMEvalConfig(task="textvqa", nsamples=0).validate()


def test_evaluate_vlm_every_method(tiny, data_dir, tmp_path):
    model, processor = tiny
    before = _snapshot(model)
    cfg = VLMEvalConfig(task="textvqa", methods=("dense", "magnitude", "sparsegpt", "wanda",
                                                 "mumoe"),
                        densities=(0.5,), data_dir=data_dir, nsamples=3, max_new_tokens=2,
                        vision_tower=True, predictions_dir=str(tmp_path), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_vlm(model, processor, cfg)
    rows = result["rows"]
    assert [(r["method"], r["density"]) for r in rows] == [
        ("dense", 1.0), ("magnitude", 0.5), ("sparsegpt", 0.5), ("wanda", 0.5), ("mumoe", 0.5)]
    assert result["config"]["calib_task"] == "scienceqa"  # the other task, as in the paper
    assert [r["calib_task"] for r in rows] == [None, None, "scienceqa", "scienceqa", None]
    assert all(0.0 <= r["accuracy"]["VQA"] <= 100.0 and r["count"]["VQA"] == 3 for r in rows)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_offline_vision_tower_is_calibrated_on_the_calibration_images(tiny, calib):
    """Wanda's mask of the first vision linear is the reference Wanda mask of the norms of its
    inputs over all calibration images (the engine sees CLIP's positional attention mask too)."""
    from mumoe_ext.reference import wanda_mask

    model, _ = tiny
    linear = model.get_submodule(VISION_LINEAR)
    inputs = []
    handle = linear.register_forward_pre_hook(lambda m, a: inputs.append(a[0].reshape(-1, 32)))
    with torch.no_grad():
        for batch in calib:
            model(**batch)
    handle.remove()
    norms = torch.cat(inputs).float().square().sum(0).sqrt()
    expected = wanda_mask(linear.weight, norms, 0.5)
    sparsify_llava(model, "wanda", 0.5, calib=calib, vision_tower=True, progress=False)
    try:
        assert torch.equal(linear.weight != 0, expected)
    finally:
        restore(model)
