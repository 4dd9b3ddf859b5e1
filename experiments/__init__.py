"""Commands that measure the library and write docs/RESULTS.md, each section by one command.

They import ``core`` (and the app, for the load test); nothing in ``core`` or ``demo`` imports
them, so the library and the app stay free of report writing, plotting and downloads.

    python -m experiments.evaluate tables --data CORPUS   # paper Tables 1, 4, 5
    python -m experiments.bench                           # inference speed
    python -m experiments.robustness                      # bad-input matrix
    python -m experiments.realspeech                      # real human speech
    python -m experiments.loadtest                        # the app under simultaneous users
"""
