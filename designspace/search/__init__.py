"""Searching a space with Optuna: objectives, budgets as constraints, storages, resumable studies."""

from designspace.search.config import SearchConfig, SearchReport
from designspace.search.objectives import Objective, parse_objective
from designspace.search.runner import run_search

__all__ = ["Objective", "SearchConfig", "SearchReport", "parse_objective", "run_search"]
