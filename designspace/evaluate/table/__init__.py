"""The per-block latency table: its entries and a network's table latency (``entries``), the per-network term
(``term``) and predicted entries (``entry_model``). Building a space's table is ``designspace.table_build``'s."""
