"""The computation behind ``streamlit run app.py``: reading studies, filtering, Pareto fronts and hypervolume
over trials, block-mix labels, figures and the network diagram.

Nothing here imports Streamlit; ``app.py`` (at the repository root) only draws widgets and calls these
functions. This subpackage imports pandas (and plotly, inside the figure functions); ``import designspace``
does not import it.

* :mod:`designspace.app.data`: the results directory, safe paths inside it, studies as data frames (from
  ``results/<study>/`` or a storage URL), the files the download buttons serve.
* :mod:`designspace.app.analysis`: axes and directions, budgets re-applied, Pareto fronts, best-so-far and
  hypervolume over trials, block mixes, a trial's architecture tables, comparisons, the zoo and device tables.
* :mod:`designspace.app.figures`: plotly figures and the Graphviz diagram of a network.
"""
