"""The media plane: audio for every call, batched per 20 ms tick."""
