"""Speech in: any file -> 16 kHz mono (decode), "does it sound like speech" (speech_check),
frozen speech encoders -> 30 fps features (encoders, their windows, encoder_bench), the feature
cache (feature_cache) and the features of a stream (stream_features)."""
