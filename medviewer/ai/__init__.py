"""Model runtime. torch is imported inside functions only, so the window opens without it."""
