"""Per-frame audio logic, pure and fast: the wake word (pymicro-wakeword behind a quiet-room gate),
voice activity (pymicro-vad) and the endpointer that decides when an utterance ended."""
