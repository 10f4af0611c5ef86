"""What a stage raises when its training run stopped before the last step.

The shared loop turns SIGTERM (a pre-empted job, Ctrl-C in `accelerate launch`, a scheduler's time
limit) into "save a checkpoint and return early". A recipe must then stop too: the stages after it
would load a model that was never written. Kept free of torch so the CLI can catch it cheaply.
"""


class StoppedEarly(Exception):
    """A run stopped before its last step after saving a checkpoint; the same command resumes it."""
