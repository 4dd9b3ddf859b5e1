"""The two rates every module agrees on: speech is 16 kHz mono, animation curves are 30 fps."""

SAMPLE_RATE = 16000   # Hz, what every speech encoder here expects
FPS = 30              # animation frames per second (Live Link Face's default rate)
