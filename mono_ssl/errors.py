"""One exception type for every mistake a user can fix (bad config, bad file, missing data).

`mono_ssl.main` catches it and prints its message as one line, so a user never
sees a deep JAX traceback for a problem that is theirs to fix.
"""


class UserInputError(ValueError):
  """Bad input from the user: the message names the bad value and the fix."""


class TrainingDiverged(RuntimeError):
  """The loss became NaN/inf; the message names the step and the last good checkpoint."""
