"""Inference: the models of a checkpoints folder (registry); the Talker, audio -> identity
match -> N-step sampling -> curves (talker); the decoder on ONNX Runtime (onnx_graph,
onnx_decoder); streaming (streaming); Live Link Face over UDP (livelink_udp)."""
