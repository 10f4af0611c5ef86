"""`llm-recipe serve`: an OpenAI-compatible HTTP server for any model folder (app.py), with a dynamic
batcher (engine.py) and the request shapes and errors of the OpenAI API (protocol.py)."""
