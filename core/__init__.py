"""DiffusionTalker: speech-driven, personalised, few-step 3D facial animation (ARKit-52)."""
__version__ = "0.1.0"
