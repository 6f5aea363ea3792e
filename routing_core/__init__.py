"""Routing ML core: data contract, model, prediction, evaluation and export, without Streamlit."""

import os

# FAISS's OpenMP threads spin while idle by default, which slows everything else on
# a 2-core machine shared with Polars and Streamlit. Set before faiss is imported;
# an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
