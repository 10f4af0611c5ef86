"""Generators of the bundled, deterministic demo data (no hub, no network): the sample corpus and
its labelled noise, the SFT set, the "Let me explain." style and fluency pairs, corpora with known
duplicates or low quality, the harmful-classifier seed data. Used by stages and tests, never by a
component (`tests/test_layers.py`)."""
