"""Compiler passes: pure functions IR -> IR, each with a registered name. Imports `ir`, networkx, numpy only."""
