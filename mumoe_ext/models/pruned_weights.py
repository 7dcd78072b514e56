"""Offline pruning changes each weight where it lives and keeps what `restore` needs (docs/offload.md).

`PrunedWeights.editing(name, linear)` gives `linear` a real `weight` on its execution device for a
`with` block — the resident Parameter itself, or for a weight accelerate offloads, a copy read
from accelerate's map — and on exit puts the pruned weight where accelerate reads it:

| where the weight lives | pruned weight goes | original kept, keep_originals=True |
|---|---|---|
| resident (GPU or CPU) | in place | a CPU copy |
| offloaded to CPU RAM | into accelerate's map (a new tensor) | the replaced tensor itself: no copy |
| offloaded to disk | a safetensors file of ours, the index entry re-pointed | the old entry: the checkpoint and accelerate's files are never written |

keep_originals=<folder>: resident and CPU-RAM originals are written as safetensors files under it
(and the CPU-RAM map is updated in place), so no extra RAM is held. keep_originals=False keeps
nothing; `restore` then raises. Originals are taken one weight at a time, when it is pruned.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .accelerate_hooks import CPU_RAM, DISK, RESIDENT, WeightHome, weight_home


@dataclass
class _Edit:
    name: str          # the linear
    home: WeightHome
    original: object   # CPU tensor, path of a file of ours, an index entry, or None


def _check_keep(keep_originals):
    if isinstance(keep_originals, bool):
        return keep_originals
    if isinstance(keep_originals, (str, os.PathLike)) and os.fspath(keep_originals):
        return os.fspath(keep_originals)
    raise TypeError(f"sparsify: keep_originals must be True, False or a folder path, got "
                    f"{keep_originals!r}")


def _new_folder(base: str, prefix: str, what: str) -> str:
    try:
        os.makedirs(base, exist_ok=True)
        return tempfile.mkdtemp(prefix=prefix, dir=base)
    except OSError as e:
        raise ValueError(f"sparsify: {what} {base!r} is not a writable folder ({e})") from None


def _save(tensor: torch.Tensor, key: str, folder: str) -> str:
    from safetensors.torch import save_file
    path = os.path.join(folder, f"{key}.safetensors")
    save_file({key: tensor.detach().to("cpu").contiguous()}, path)
    return path


def _load(path: str, key: str) -> torch.Tensor:
    from safetensors import safe_open
    with safe_open(path, framework="pt", device="cpu") as f:
        return f.get_tensor(key)


class PrunedWeights:
    """The weights an offline `sparsify` changed, where it put them, and their originals."""

    def __init__(self, model: nn.Module, keep_originals=True, offload_folder=None):
        if offload_folder is not None and not isinstance(offload_folder, (str, os.PathLike)):
            raise TypeError(f"sparsify: offload_folder must be a folder path, got {offload_folder!r}")
        self.model = model
        self.keep = _check_keep(keep_originals)
        self._offload_base = os.fspath(offload_folder) if offload_folder is not None else None
        self._pruned_dir = None
        self._originals_dir = None
        self._edits: list[_Edit] = []
        self._homes: dict = {}

    def prepare(self, names) -> dict:
        """Check where every linear of `names` lives before anything changes; create our folders.
        Returns {name: WeightHome}."""
        homes = {n: weight_home(self.model, n) for n in names}
        disk = [h for h in homes.values() if h.kind == DISK]
        base = self._offload_base or (getattr(disk[0].loader, "save_folder", None) if disk else None)
        if disk and base is None:
            raise ValueError(f"sparsify: {disk[0].name} is offloaded to disk and the model has no "
                             f"offload folder; pass offload_folder= (a folder for the pruned "
                             f"weights: the checkpoint itself is never written)")
        try:
            if disk and self._pruned_dir is None:
                self._pruned_dir = _new_folder(os.fspath(base), "mumoe-pruned-", "offload_folder")
            if isinstance(self.keep, str) and self._originals_dir is None and any(
                    h.kind != DISK for h in homes.values()):
                self._originals_dir = _new_folder(self.keep, "mumoe-originals-", "keep_originals")
        except BaseException:
            self._remove_folders()
            raise
        self._homes = homes
        return homes

    def _kept(self, home: WeightHome, tensor: torch.Tensor, key: str):
        if self.keep is True:
            return tensor.detach().to("cpu", copy=True)
        if self.keep is False:
            return None
        return _save(tensor, key, self._originals_dir)

    @contextmanager
    def editing(self, name: str, linear: nn.Linear):
        """`linear.weight` is a real tensor inside the block; its final value is what is kept."""
        home = self._homes.get(name) or weight_home(self.model, name)
        if home.kind == RESIDENT:
            self._edits.append(_Edit(name, home, self._kept(home, linear.weight, home.name)))
            yield linear.weight
            return
        offloaded = linear.weight  # the meta Parameter accelerate keeps on the module
        stored = home.load()  # a CPU-RAM map hands out its own tensor: prune a copy of it
        linear.weight = nn.Parameter(stored.to(home.device, offloaded.dtype, copy=home.kind == CPU_RAM),
                                     requires_grad=offloaded.requires_grad)
        try:
            yield linear.weight
            self._edits.append(_Edit(name, home, self._write_back(home, linear.weight, stored)))
        finally:
            linear.weight = offloaded

    def _write_back(self, home: WeightHome, pruned: torch.Tensor, stored: torch.Tensor):
        pruned = pruned.detach()
        if home.kind == CPU_RAM:
            old = home.store[home.key]
            if self.keep is True:  # the map gets a new tensor; the old one is the original
                home.store[home.key] = pruned.to(old.device, old.dtype)
                return old
            original = self._kept(home, old, home.key)
            old.copy_(pruned)
            return original
        entry = home.store[home.key]
        path = _save(pruned.to(stored.dtype), home.key, self._pruned_dir)
        home.store[home.key] = {"safetensors_file": path, "weight_name": home.key,
                                "dtype": str(stored.dtype).removeprefix("torch.")}
        return entry

    def restore(self) -> None:
        """Put every original back and delete our files; raises if none were kept."""
        if self.keep is False and any(e.home.kind != DISK for e in self._edits):
            raise RuntimeError("restore: the model was pruned with sparsify(..., keep_originals=False), "
                               "so its original weights are gone; load the model again")
        for edit in reversed(self._edits):
            home, original = edit.home, edit.original
            if home.kind == DISK:
                home.store[home.key] = original
                continue
            if isinstance(original, str):
                original = _load(original, home.key if home.kind == CPU_RAM else home.name)
                if home.kind == CPU_RAM:
                    home.store[home.key].copy_(original)
                    continue
            if home.kind == CPU_RAM:
                home.store[home.key] = original
            else:
                self.model.get_submodule(edit.name).weight.copy_(original)
        self._edits.clear()
        self._remove_folders()

    def _remove_folders(self) -> None:
        for folder in (self._pruned_dir, self._originals_dir):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        self._pruned_dir = self._originals_dir = None
