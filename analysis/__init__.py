"""The paper's section V study: tables in, statistics, figures and report out.

Needs pyproject's ``study`` extra: on a core install (`pip install gradeclip-study`) importing it fails with one line
naming the extra (gradeclip/extras.py), not with the first missing module deep inside a study module."""
from gradeclip.extras import require

require(["pandas", "scipy", "statsmodels"], "the analysis package (analysis/)")
