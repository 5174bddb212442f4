"""Grad-ECLIP: gradient-based visual and textual explanations for CLIP (Zhao et al., arXiv 2502.18816)."""
