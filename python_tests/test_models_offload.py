"""sparsify / restore on models accelerate dispatched and offloaded (docs/offload.md), on the CPU.

Every layout of helpers_offload.py (from_pretrained with a device_map or "auto" + max_memory, a
CPU-RAM state dict, .dat files, preloaded layers, cpu_offload) against the same checkpoint loaded
normally: µ-MoE masks, logits and generation, offline methods' pruned weights as accelerate reads
them, restore, what is written where, and how many offloaded weights are ever on a device at once.
"""
import os

import pytest
import torch

from mumoe_ext.models import MuMoELinear, cache_weights, restore, select_linears, sparsify, sparsify_state
from mumoe_ext.models.accelerate_hooks import CPU_RAM, DISK, RESIDENT, placements, weight_home
from mumoe_ext.models.hf_cache import cache_in_output

from conftest import cuda_devices
from helpers_generation import expected_masks, static_logits
from helpers_models import token_windows
from helpers_offload import (BUILD, KINDS, LAYERS, LAYOUTS, OffloadedOnDevice, disk_map, dispatched,
                             plain, read_state, save_tiny, tree_digest)

DENSITY = 0.5
CASES = [(layout, "llama") for layout in LAYOUTS] + [("hf-disk", "opt"), ("ram+dat", "opt")]
CASE_IDS = [f"{family}-{layout}" for layout, family in CASES]
# Same CPU ops on the same values in both models (accelerate only moves tensors): equal in practice;
# the tolerance leaves room for a vendor GEMM that blocks a differently aligned copy otherwise.
TOL = dict(rtol=1e-5, atol=1e-5)
# µ-MoE vs the static model carrying the expected masks: sparse vs dense summation order (~1e-7).
STATIC_TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("offload")


def _layer_of(name: str, family: str) -> int:
    return int(name[len(LAYERS[family]) + 1:].split(".", 1)[0])


def _calib():
    return token_windows(3, 12, seed=1)


@pytest.mark.parametrize("layout,family", CASES, ids=CASE_IDS)
def test_placements_pin_how_accelerate_lays_out_its_hooks(layout, family, folder):
    model, _, _ = dispatched(layout, family, folder)
    found = placements(model, select_linears(model))
    assert found
    for name, (kind, device) in found.items():
        assert kind == KINDS[layout][_layer_of(name, family)], name
        assert device == torch.device("cpu"), name
        assert model.get_submodule(name).weight.is_meta == (kind != RESIDENT), name


@pytest.mark.parametrize("layout,family", CASES, ids=CASE_IDS)
def test_mumoe_keeps_the_hooks_and_matches_the_model_loaded_normally(layout, family, folder):
    model, _, _ = dispatched(layout, family, folder)
    ref = plain(family, folder)
    names = list(select_linears(model))
    originals = {n: model.get_submodule(n) for n in names}
    hooks = {n: getattr(m, "_hf_hook", None) for n, m in originals.items()}
    ids = token_windows(2, 9, seed=3)
    with torch.no_grad():
        dense = model(ids).logits
        torch.testing.assert_close(dense, ref(ids).logits, **TOL)
        sparsify(model, "mumoe", DENSITY)
        sparsify(ref, "mumoe", DENSITY)
        for n in names:
            m = model.get_submodule(n)
            assert isinstance(m, MuMoELinear), n
            if hooks[n] is not None:  # a copy of the linear's hook: same devices, same weights map
                assert m._hf_hook is not hooks[n] and type(m._hf_hook) is type(hooks[n]), n
        logits = model(ids).logits
        torch.testing.assert_close(logits, ref(ids).logits, **TOL)
        assert not torch.allclose(logits, dense, atol=1e-3)  # µ-MoE really ran on every layer
        for n, (kind, _) in placements(model, names).items():  # weights went back to accelerate
            assert model.get_submodule(n).weight.is_meta == (kind != RESIDENT), n
        # the independent expectation: the static model carrying one prompt's reference masks
        one = ids[:1]
        static = static_logits(BUILD[family], expected_masks(ref, one, DENSITY), one)
        torch.testing.assert_close(model(one).logits[0], static, **STATIC_TOL)
    restore(model)
    for n in names:
        assert model.get_submodule(n) is originals[n]
        assert getattr(originals[n], "_hf_hook", None) is hooks[n]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, dense)


@pytest.mark.parametrize("layout,family", [("hf-disk", "llama"), ("ram+dat", "opt")],
                         ids=["llama-hf-disk", "opt-ram+dat"])
def test_mumoe_generation_decodes_with_the_prefill_compact_weights(layout, family, folder):
    model, _, _ = dispatched(layout, family, folder)
    ref = plain(family, folder)
    sparsify(model, "mumoe", DENSITY)
    sparsify(ref, "mumoe", DENSITY)
    ids = torch.full((2, 9), 9, dtype=torch.long)  # left-padded batch: padding must stay out
    ids[0] = token_windows(1, 9, seed=4)[0]
    ids[1, 3:] = token_windows(1, 6, seed=5)[0]
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    kw = dict(max_new_tokens=4, do_sample=False, pad_token_id=1, output_logits=True,
              return_dict_in_generate=True)
    with torch.no_grad():
        got, want = model.generate(ids, attention_mask=mask, **kw), ref.generate(ids, attention_mask=mask, **kw)
    assert torch.equal(got.sequences, want.sequences)
    torch.testing.assert_close(torch.stack(got.logits), torch.stack(want.logits), **TOL)
    got_w = cache_weights(model, cache_in_output(got))
    want_w = cache_weights(ref, cache_in_output(want))
    assert set(got_w) == set(want_w) == set(select_linears(model))
    for n, rs in got_w.items():  # the masks exactly; the compact weights on the execution device
        assert torch.equal(rs.bitmap, want_w[n].bitmap), n
        assert torch.equal(rs.values, want_w[n].values), n
        assert rs.values.device == torch.device("cpu"), n


OFFLINE_CASES = ([(layout, family, "wanda") for layout, family in CASES]
                 + [(layout, "llama", m) for layout in ("hf-disk", "ram+dat", "preload")
                    for m in ("magnitude", "sparsegpt")])


@pytest.mark.parametrize("layout,family,method", OFFLINE_CASES,
                         ids=[f"{f}-{l}-{m}" for l, f, m in OFFLINE_CASES])
def test_offline_pruning_lands_where_accelerate_reads_and_restores(layout, family, method, folder):
    model, checkpoint, offload = dispatched(layout, family, folder)
    ref = plain(family, folder)
    before = read_state(model)
    files = tree_digest(checkpoint), tree_digest(offload)
    ids = token_windows(2, 9, seed=3)
    calib = _calib() if method != "magnitude" else None
    with torch.no_grad():
        sparsify(model, method, DENSITY, calib=calib, progress=False)
        sparsify(ref, method, DENSITY, calib=calib, progress=False)
        got, want = read_state(model), ref.state_dict()
        assert set(got) == set(want)
        for n in select_linears(model):
            key = f"{n}.weight"
            assert torch.equal(got[key] != 0, want[key] != 0), key  # the same masks, exactly
            torch.testing.assert_close(got[key], want[key], **TOL)
            assert not torch.equal(got[key], before[key]), key
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, **TOL)
    assert tree_digest(checkpoint) == files[0]  # the checkpoint is never written
    offload_now = tree_digest(offload)
    assert {k: v for k, v in offload_now.items() if k in files[1]} == files[1]  # nor accelerate's files
    restore(model)
    after = read_state(model)
    assert set(after) == set(before)
    for key in before:
        assert torch.equal(after[key], before[key]), key
    assert tree_digest(offload) == files[1]  # the pruned weights' files are gone


@pytest.mark.filterwarnings("ignore:Attempting to save a model with offloaded modules")
def test_save_pretrained_of_a_pruned_offloaded_model_saves_the_pruned_weights(folder, tmp_path):
    from transformers import AutoModelForCausalLM
    model, _, _ = dispatched("hf-disk", "llama", folder)
    ref = plain("llama", folder)
    for m in (model, ref):
        sparsify(m, "wanda", DENSITY, calib=_calib(), progress=False)
    model.save_pretrained(tmp_path / "saved")
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "saved").state_dict()
    want = ref.state_dict()
    assert set(saved) == set(want)
    assert all(torch.equal(saved[k], want[k]) for k in want)
    restore(model)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "mumoe"])
def test_one_offloaded_weight_on_a_device_at_a_time(method, folder):
    """Calibration runs layer by layer and each offloaded weight comes to the execution device only
    for its own forward or its own pruning: never two at once (per-linear hooks)."""
    model, _, _ = dispatched("hf-disk", "llama", folder)
    offloaded = [model.get_submodule(n) for n, (kind, _) in placements(model, select_linears(model)).items()
                 if kind != RESIDENT]
    assert offloaded
    with torch.no_grad(), OffloadedOnDevice(offloaded) as probe:
        sparsify(model, method, DENSITY, calib=_calib(), progress=False)
        if method == "mumoe":  # the MuMoELinears that replaced the offloaded linears
            probe.linears = [m for m in map(model.get_submodule, select_linears(model))
                             if m.weight.is_meta]
            assert len(probe.linears) == len(offloaded)
            model.generate(token_windows(1, 6), max_new_tokens=3, do_sample=False, pad_token_id=1)
    assert probe.peak == 1


def test_a_preloaded_layer_is_on_a_device_only_as_a_whole(folder):
    """preload_module_classes: the layer's hook loads all its linears for its forward; calibration
    still never has more than that one layer's weights on a device."""
    model, _, _ = dispatched("preload", "llama", folder)
    layer1 = [model.get_submodule(n) for n in select_linears(model) if _layer_of(n, "llama") == 1]
    with torch.no_grad(), OffloadedOnDevice(layer1) as probe:
        sparsify(model, "wanda", DENSITY, calib=_calib(), progress=False)
    assert probe.peak == len(layer1)


def test_keep_originals_in_a_folder(folder, tmp_path):
    model, _, _ = dispatched("ram+dat", "llama", folder)
    before = read_state(model)
    sparsify(model, "wanda", DENSITY, calib=_calib(), progress=False, keep_originals=tmp_path)
    kept = [f for _, _, fs in os.walk(tmp_path) for f in fs]
    homes = {n: weight_home(model, n).kind for n in select_linears(model)}
    # CPU-RAM and resident originals go to files; disk ones need none (their files stay untouched)
    assert len(kept) == sum(kind != DISK for kind in homes.values()) > 0
    restore(model)
    after = read_state(model)
    for key in before:
        assert torch.equal(after[key], before[key]), key
    assert not any(fs for _, _, fs in os.walk(tmp_path))


def test_keep_originals_false_keeps_nothing_and_restore_says_so(folder):
    model, _, _ = dispatched("ram+dat", "llama", folder)
    sparsify(model, "magnitude", DENSITY, keep_originals=False)
    with pytest.raises(RuntimeError, match="keep_originals=False"):
        restore(model)
    assert sparsify_state(model) is None
    w = read_state(model)["model.layers.0.mlp.up_proj.weight"]
    assert (w == 0).float().mean().item() == pytest.approx(1 - DENSITY, abs=0.01)  # still pruned


def test_disk_offload_without_a_folder_asks_for_offload_folder(folder, tmp_path):
    from transformers import AutoModelForCausalLM
    path = save_tiny("llama", folder)
    # transformers reads disk-offloaded safetensors weights from the checkpoint: no folder needed
    model = AutoModelForCausalLM.from_pretrained(path, device_map=disk_map("llama"))
    before = read_state(model)
    with pytest.raises(ValueError, match="offload_folder"):
        sparsify(model, "magnitude", DENSITY)
    assert sparsify_state(model) is None
    sparsify(model, "magnitude", DENSITY, offload_folder=tmp_path / "pruned")
    assert len([f for _, _, fs in os.walk(tmp_path) for f in fs]) == len(select_linears(model))
    restore(model)
    assert all(torch.equal(v, before[k]) for k, v in read_state(model).items())
    assert not any(fs for _, _, fs in os.walk(tmp_path))


def test_bad_offload_arguments_raise_clear_errors(folder, tmp_path):
    model, _, _ = dispatched("hf-disk", "llama", folder)
    with pytest.raises(TypeError, match="keep_originals"):
        sparsify(model, "magnitude", DENSITY, keep_originals=3)
    with pytest.raises(TypeError, match="offload_folder"):
        sparsify(model, "magnitude", DENSITY, offload_folder=3)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="offload_folder"):
        sparsify(model, "magnitude", DENSITY, offload_folder=a_file)
    assert sparsify_state(model) is None


def test_an_unknown_weights_map_raises_before_anything_changes(folder):
    from collections.abc import Mapping

    class ReadOnlyMap(Mapping):
        def __init__(self, inner):
            self.inner = inner

        def __getitem__(self, k):
            return self.inner[k]

        def __iter__(self):
            return iter(self.inner)

        def __len__(self):
            return len(self.inner)

    model, _, _ = dispatched("hf-disk", "llama", folder)
    before = read_state(model)
    hook = model.get_submodule("model.layers.1.mlp.up_proj")._hf_hook
    hook.weights_map = ReadOnlyMap(hook.weights_map)
    with pytest.raises(TypeError, match="model.layers.1.mlp.up_proj.weight"):
        sparsify(model, "wanda", DENSITY, calib=_calib(), progress=False)
    assert sparsify_state(model) is None
    after = read_state(model)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_meta_weights_without_an_offload_hook_raise():
    with torch.device("meta"):
        model = BUILD["llama"]()
    with pytest.raises(ValueError, match="meta device"):
        sparsify(model, "magnitude", DENSITY)


@pytest.mark.skipif(not cuda_devices(), reason="needs a GPU and the CUDA kernels")
@pytest.mark.parametrize("method", ["mumoe", "wanda"])
def test_gpu_main_device_with_cpu_and_disk_offload(method, folder, tmp_path):
    """The real setup: GPU execution, layer 0 offloaded to CPU RAM, layer 1 to disk, inputs and
    padding mask given on the CPU (the masks must follow the activations to the GPU)."""
    from transformers import AutoModelForCausalLM
    path = save_tiny("llama", folder)
    device_map = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.norm": 0, "lm_head": 0,
                  "model.layers.0": "cpu", "model.layers.1": "disk"}
    model = AutoModelForCausalLM.from_pretrained(path, device_map=device_map, offload_folder=tmp_path)
    ref = AutoModelForCausalLM.from_pretrained(path).to("cuda").eval()
    found = placements(model, select_linears(model))
    assert {k for k, _ in found.values()} == {CPU_RAM, DISK}
    assert all(d.type == "cuda" for _, d in found.values())
    ids = token_windows(2, 9, seed=3)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    with torch.no_grad():
        sparsify(model, method, DENSITY, calib=_calib(), progress=False)
        sparsify(ref, method, DENSITY, calib=_calib(), progress=False)
        got = model(ids, attention_mask=mask).logits.cuda()
        want = ref(ids.cuda(), attention_mask=mask.cuda()).logits
    # GPU GEMMs on differently aligned copies may round differently: fp32 noise, well below 1e-3
    torch.testing.assert_close(got[mask.bool()], want[mask.bool().cuda()], rtol=1e-3, atol=1e-3)
    restore(model)
