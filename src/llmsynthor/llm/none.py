"""``llm.backend: none`` — a run without a model, asked for explicitly (``--llm none``).

The tables are joined by independence, as IPF would join them: the baseline a model has to beat,
or what to run where no model is at hand. It answers nothing: a step that needs the model's words
(proposals, household compositions) is refused before any work
(:func:`llmsynthor.shapes.flat.synthesizer.Synthesizer` names the reason); the pairwise prior sees a backend
that cannot score options and says so in a note, the manifest and the output.
"""

from __future__ import annotations

from ..core.errors import BackendError
from .base import Completion

NAME = "no model (llm.backend: none)"


class NoModel:
    """The backend of a run without a model: it has a name and refuses every request."""

    name = NAME
    cache_identity = {"name": NAME}
    without_model = True  # read by the steps that would ask it: they skip, or refuse before work

    def complete_json(self, messages, schema, *, max_tokens: int, temperature: float, seed: int) -> Completion:
        raise BackendError("this run has no model (llm.backend: none), yet a step asked it for an answer")


def without_model(backend) -> bool:
    """Whether ``backend`` (or the backend a cache wraps) is :class:`NoModel`: a run without a model."""
    return bool(getattr(getattr(backend, "inner", backend), "without_model", False))
