"""The per-block latency table: its entries and a network's table latency (``entries``), the per-network term
that turns the entries' sum into a latency (``term``) and the predicted entries of components not yet measured
(``entry_model``). Building a space's table samples the space, so it sits above it (``designspace.table_build``)."""
