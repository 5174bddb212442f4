"""Grad-ECLIP: gradient-based visual and textual explanations for CLIP (Zhao et al., arXiv 2502.18816).

    from gradeclip import GradECLIP
    explainer = GradECLIP.from_pretrained("ViT-B-16", "openai")
    maps = explainer("dog.jpg", ["a dog", "a frisbee"])
"""
from .explainer import GradECLIP, ImageExplanation, TextExplanation
from .models import LoadedClip, ModelLoadError, load_clip

__all__ = ["GradECLIP", "ImageExplanation", "TextExplanation", "LoadedClip", "ModelLoadError", "load_clip"]
__version__ = "0.1.0"
