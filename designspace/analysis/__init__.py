"""Design-space analysis: what a space or a study is like on a device, seen as distributions (``designspace
analyze``).

* :mod:`~designspace.analysis.samples`: the networks (a space's seeded samples) and their metrics;
* :mod:`~designspace.analysis.sources`: a study's trials as such networks, and a name resolved to a study or a space;
* :mod:`~designspace.analysis.distributions`: weighted EDFs, MAC-matched weights, quantiles, the bootstrap;
* :mod:`~designspace.analysis.importance`: parameter importances by Optuna's evaluators (Optuna imported there only);
* :mod:`~designspace.analysis.compare`: two groups' EDFs at matched MACs, which dominates and by how much;
* :mod:`~designspace.analysis.report`: :func:`analyze` and :func:`compare`, and what the command prints.

``import designspace`` imports none of it.
"""

from designspace.analysis.report import Analysis, Comparison, analyze, compare
from designspace.analysis.samples import SampleSet, space_samples
from designspace.analysis.sources import load_samples, study_samples

__all__ = ["Analysis", "Comparison", "SampleSet", "analyze", "compare", "load_samples", "space_samples",
           "study_samples"]
