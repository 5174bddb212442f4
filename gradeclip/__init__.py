"""Grad-ECLIP: gradient-based visual and textual explanations for CLIP (Zhao et al., arXiv 2502.18816).

    from gradeclip import GradECLIP
    explainer = GradECLIP.from_pretrained("ViT-B-16", "openai")
    maps = explainer("dog.jpg", ["a dog", "a frisbee"])
"""
import importlib

__version__ = "0.1.0"

# The model-facing names are imported on first use, so that the data-level modules (gradeclip.io, gradeclip.clevr,
# gradeclip.toyworld, gradeclip.options, ...) can be imported by the analyses without loading torch
# (tests/test_options.py checks it; gradeclip.batch and gradeclip.geometry do load it).
_LAZY = {"GradECLIP": "explainer", "ImageExplanation": "explainer", "TextExplanation": "explainer",
         "LoadedClip": "models", "ModelLoadError": "models", "load_clip": "models"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gradeclip' has no attribute {name!r}")
