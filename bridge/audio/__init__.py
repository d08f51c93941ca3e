"""Audio formats: WAV/RIFF parsing and conversion to the bridge's 16 kHz mono 16-bit PCM."""
