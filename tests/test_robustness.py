"""The bad-input matrix through the Python API (the app's HTTP path is covered in test_app)."""
import numpy as np
import pytest

from core.audio.decode import load_audio
from core.inference.talker import Talker
from experiments.robustness import MAX_APP_SECONDS, make_cases, run_case, seam_ratio



@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return make_cases(tmp_path_factory.mktemp("inputs"))


def test_matrix_has_at_least_twenty_cases(cases):
    assert len(cases) >= 20


@pytest.mark.slow
def test_every_case_gives_a_result_or_a_clear_error(whisper_checkpoints, cases):
    talker = Talker.from_pretrained(whisper_checkpoints)

    def generate(source, **params):
        return talker.generate(load_audio(source, max_seconds=MAX_APP_SECONDS), **{"steps": 2, **params})

    for case in cases:
        if case.expect == "skip":
            continue
        outcome, detail = run_case(generate, case)
        assert outcome == case.expect, f"{case.name}: {outcome} ({detail})"
        if outcome == "error":
            assert detail and "Traceback" not in detail
    assert talker.generate(load_audio(cases[4].source), steps=2).frames > 0  # still serving


def test_seam_ratio_flags_a_jump_at_a_join():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(0, 0.01, (900, 52)), 0)
    assert seam_ratio(smooth) < 2
    stepped = smooth.copy()
    stepped[240:] += 0.5          # a jump at the 8 s join
    assert seam_ratio(stepped) > 5
    assert seam_ratio(stepped, offset_s=4.0) < 2   # the control places do not see it
