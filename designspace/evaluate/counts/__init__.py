"""Counting: parameters and MACs of an Arch, analytic per component (``analytic``) and by tracing the built
network (``traced``), and the zoo report that checks both against the published figures (``zoo_report``)."""
