"""Speech-to-text engines: the local recognizer (pocketsphinx in worker processes: `worker`, its
typed messages, the pool, the stream), the one-shot grammar compiler, the forward to Home
Assistant's Assist pipeline, the Wyoming client on the LAN, and the fallback between them."""
