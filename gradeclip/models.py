"""Loading a CLIP through open_clip's own factory and cache: model name + pretrained tag, ``hf-hub:`` names, or a
local checkpoint file; device and precision; one clear error when the weights are not there (offline machines)."""
from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import open_clip
import torch

from .files import names_checkpoint_file
from .geometry import Preprocessing

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
PRECISIONS = ("fp32", "fp16", "bf16")


class ModelLoadError(RuntimeError):
    """The model could not be created or its weights could not be found; the message says what to do."""


@dataclass
class LoadedClip:
    """A CLIP ready to be explained: the model (eval mode), its tokenizer and its preprocessing."""

    model: torch.nn.Module
    tokenizer: Any
    preprocessing: Preprocessing
    name: str
    pretrained: Optional[str]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


_REGISTERED: set[Path] = set()


def register_model_configs(directory: Path = MODEL_CONFIG_DIR) -> None:
    """Make the project's own model configs (the toy CLIP) known to open_clip's factory by name (once per folder:
    open_clip rescans every registered folder on each registration)."""
    directory = Path(directory).resolve()
    if directory.is_dir() and directory not in _REGISTERED:
        open_clip.add_model_config(directory)
        _REGISTERED.add(directory)


# The key under which gradeclip's training (gradeclip.toyworld.train) stores its metadata beside the state dict;
# open_clip's loader reads only "state_dict" and ignores it.
TRAINING_METADATA_KEY = "toy_clip"


def checkpoint_metadata(path: os.PathLike | str) -> dict:
    """The training metadata stored in a checkpoint that gradeclip trained ({} for a checkpoint without any).
    Memory-mapped: the weights themselves are not read."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(TRAINING_METADATA_KEY, {})


def _recorded_architecture(path: os.PathLike | str) -> Optional[str]:
    """The architecture a checkpoint file records having been trained as; None when it records none."""
    try:
        return checkpoint_metadata(path).get("model_name")
    except Exception:  # safetensors, legacy pickles, foreign layouts: nothing recorded; open_clip reports real errors
        return None


def register_model_config_file(path: os.PathLike | str) -> str:
    """Make one open_clip model config JSON (a variant of the toy CLIP, say) known to open_clip's factory under its
    file name without ``.json``, and return that name. Raises ``ModelLoadError`` naming the file when it is missing,
    is not a model config, or would shadow an architecture that open_clip already knows."""
    path = Path(path).resolve()
    if path in _REGISTERED:
        return path.stem
    try:
        config = json.loads(path.read_text())
    except OSError as err:
        raise ModelLoadError(f"model config {path}: cannot read it ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"model config {path}: not JSON ({err})") from None
    keys = config if isinstance(config, dict) else {}
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in keys]
    if missing:
        raise ModelLoadError(f"model config {path}: missing {', '.join(missing)} (an open_clip model config has "
                             "embed_dim, vision_cfg and text_cfg; see gradeclip/model_configs/)")
    register_model_configs()
    if path.stem in open_clip.list_models():
        raise ModelLoadError(f"model config {path}: open_clip already has an architecture named {path.stem!r}; "
                             "rename the file")
    open_clip.add_model_config(path)
    _REGISTERED.add(path)
    return path.stem


def checked_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists on this machine; ``ModelLoadError`` naming it otherwise (torch's
    own errors for a missing GPU come deep from the first tensor moved there, worded for driver installers)."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"device {device!r} is not a torch device: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ModelLoadError(f"device {device}: torch sees no CUDA GPU on this machine (torch.cuda.is_available() "
                                 "is False); use --device cpu")
        if device.index is not None and device.index >= count:
            raise ModelLoadError(f"device {device}: torch sees {count} CUDA GPU{'s' if count > 1 else ''} here "
                                 f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {device}: Apple's MPS is not available on this machine; use --device cpu")
    return device


def _not_a_checkpoint(path: Path) -> Optional[str]:
    """Why a local file is not a checkpoint open_clip can read its weights from (None when it is one): called once
    open_clip has failed on it, to tell a wrong file from weights that do not fit the architecture."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                f.keys()
            return None
        is_zip = zipfile.is_zipfile(path)
        with open(path, "rb") as f:
            if not is_zip and f.read(1) != b"\x80":  # torch.save writes a zip archive; old torch a pickle
                return "it is neither a zip archive (what torch.save writes) nor a pickle"
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as err:  # pickle, zip, safetensors and torch errors alike: the file is not one
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"torch cannot read it ({reason})"
    if isinstance(content, dict) and "state_dict" in content:
        content = content["state_dict"]
    if not isinstance(content, dict) or not content or not all(torch.is_tensor(v) for v in content.values()):
        return f"it holds a {type(content).__name__}, not a state dict of tensors"
    return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the Hugging Face hub; without it, huggingface_hub retries for over a minute
    before failing on an offline machine."""
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


@contextlib.contextmanager
def _offline_if_unreachable():
    """Switch huggingface_hub to its cache-only mode for the duration of a load when HF_HUB_OFFLINE is set or the
    hub cannot be reached, so that cached weights still load and missing ones fail at once. Yields why the hub is
    not asked (None when it is).

    huggingface_hub reads HF_HUB_OFFLINE once, when it is imported: an HF_HUB_OFFLINE set later (by a notebook, a
    test's conftest, a wrapper script) is not seen by it, and each missing file is retried for ~45 s. So the
    variable is honoured here by setting huggingface_hub's own constant too, not only the environment."""
    if _offline_env():
        reason = "HF_HUB_OFFLINE is set"
    elif not _hub_reachable():
        reason = "The Hugging Face hub could not be reached from this machine"
    else:
        yield None
        return
    previous_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hc  # read at import time by huggingface_hub, so set it there too
        previous = hc.HF_HUB_OFFLINE
        hc.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):  # pragma: no cover - older huggingface_hub
        hc, previous = None, None
    try:
        yield reason
    finally:
        if previous_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous_env
        if hc is not None:
            hc.HF_HUB_OFFLINE = previous


def _cache_location(cache_dir: Optional[str]) -> str:
    if cache_dir:
        return str(cache_dir)
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def load_clip(name: str, pretrained: Optional[str] = None, *, device: str | torch.device = "cpu",
              precision: str = "fp32", cache_dir: Optional[str] = None) -> LoadedClip:
    """Create an open_clip CLIP in eval mode.

    name: an open_clip architecture (``ViT-B-16``, ``RN50``, the toy ``gradeclip-toy-ViT``...) or ``hf-hub:org/repo``.
    pretrained: an open_clip tag (``openai``, ``laion2b_s34b_b88k``...), a local checkpoint file, or None for random
    weights. Raises ``ModelLoadError`` with one actionable message (never a hub traceback) when it fails.
    """
    register_model_configs()
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = checked_device(device)
    if precision != "fp32" and device.type != "cuda":
        raise ModelLoadError(f"precision {precision} needs a CUDA device (got {device}); use fp32 on the CPU")
    if names_checkpoint_file(pretrained) and not Path(pretrained).exists():
        raise ModelLoadError(f"checkpoint file for model {name!r} not found: {pretrained}")
    if pretrained and Path(pretrained).is_dir():
        raise ModelLoadError(f"{pretrained} is a folder: pretrained must be an open_clip tag or a checkpoint file")
    if pretrained and Path(pretrained).is_file():
        # Architectures that differ only in how channels are split into heads share every weight shape, so a
        # checkpoint would load into the wrong one without complaint.
        trained_as = _recorded_architecture(pretrained)
        if trained_as and trained_as != name:
            raise ModelLoadError(f"{pretrained} was trained as {trained_as!r}, not {name!r}: load it as "
                                 f"{trained_as!r} (with its model config registered: --model-config "
                                 f"{trained_as}.json on the toyworld commands)")
    what = f"model {name!r}" + (f" with pretrained weights {pretrained!r}" if pretrained else "")
    offline = None
    try:
        with _offline_if_unreachable() as offline:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device, precision=precision, cache_dir=cache_dir)
            tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
    except Exception as err:  # open_clip/hub raise RuntimeError, OSError, HTTP errors...: one message for all
        first_line = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__
        schema = name.startswith(("hf-hub:", "local-dir:"))
        arch = name.replace("/", "-")  # open_clip's own cleaning of names such as "ViT-B/16"
        if not schema and arch not in open_clip.list_models():
            # open_clip's own message lists all ~170 architectures, and cache / offline advice does not apply to a
            # name that does not exist: say only that, with the closest names
            close = difflib.get_close_matches(arch, open_clip.list_models(), n=3)
            raise ModelLoadError(
                f"could not load {what}: unknown architecture {name!r}"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + "; see open_clip.list_models() (e.g. ViT-B-16, RN50), or use hf-hub:org/repo.") from None
        if pretrained and Path(pretrained).is_file():  # a local file: neither the hub nor the cache was involved
            problem = _not_a_checkpoint(Path(pretrained))
            if problem:
                raise ModelLoadError(f"{pretrained} (the weights for model {name!r}) is not a torch/open_clip "
                                     f"checkpoint: {problem}. Pass a file written by torch.save (a state dict, or a "
                                     "dict with 'state_dict') or a .safetensors file.") from None
            raise ModelLoadError(f"{pretrained}: a checkpoint, but its weights do not fit model {name!r} "
                                 f"({first_line}); load it with the architecture it was saved from.") from None
        hint = ""
        if pretrained and not schema and not Path(pretrained).exists():
            tags = open_clip.list_pretrained_tags_by_model(arch)
            if tags and pretrained not in tags:
                hint = f" Known tags for {name}: {', '.join(tags)}."
        offline_note = f" {offline}, so only the local cache was searched." if offline else ""
        raise ModelLoadError(
            f"could not load {what}: {first_line}.{hint}{offline_note} Looked in the cache at "
            f"{_cache_location(cache_dir)}. To use it offline, download the weights once on a machine with "
            f"internet (same cache dir), or pass a local checkpoint file as pretrained "
            f"(--pretrained /path/to/checkpoint.pt).") from None
    model.eval()
    cfg = open_clip.get_model_preprocess_cfg(model)
    logging.getLogger(__name__).debug("loaded %s (%s) on %s", name, pretrained, device)
    return LoadedClip(model, tokenizer, Preprocessing.from_open_clip(cfg), name, pretrained)
