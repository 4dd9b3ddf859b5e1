"""``python -m experiments.evaluate SUBCOMMAND``: the evaluation sections of docs/RESULTS.md.

* ``tables``: every model of the manifest on the test split (paper Tables 1, 4, 5, seed
  diversity, training budgets), written to docs/results.json, RESULTS.md and the manifest;
* ``report``: RESULTS.md rewritten from docs/results.json (no evaluation);
* ``fp16 NAME``, ``encoder NAME``, ``enrolment NAME``: one model against a variant of itself
  (fp16-rounded weights, the int8 speech encoder, an unseen identity enrolled).

The measurements themselves are library functions (:mod:`core.evaluation.evaluate`).
"""
