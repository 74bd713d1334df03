"""The self-checks of the notebooks' exercises, one module per notebook (``nb00`` ... ``nb07``).

They live here, not in the notebooks, so that reading a check does not give its answer away.
Each ``check_exercise_N(answer, ...)`` prints one line: ``correct: ...``, or ``not yet: ...``
naming the field or the number that is wrong, and it never raises (an unanswered exercise in CI
is not an error). Where a learner's code runs inside a consumer, the check shows the errors the
consumer swallowed: the dead letters, with their reasons.
"""

from . import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07

__all__ = ["nb00", "nb01", "nb02", "nb03", "nb04", "nb05", "nb06", "nb07"]
