"""Evaluation: the paper's metrics (metrics), real-speech lip metrics (lipsync), and evaluating
a Talker on clips (evaluate), the upper face against the generator's truth draws (upper_face)."""
