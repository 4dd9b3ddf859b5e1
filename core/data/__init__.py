"""Datasets: the synthetic corpus, BEAT and Live Link Face captures behind one interface."""
