"""llmsynthor: realistic micro-records that agree with given aggregate statistics.

    >>> from llmsynthor import load_spec, synthesize
    >>> result = synthesize(load_spec("examples/ecommerce/spec.yaml"))   # doctest: +SKIP
    >>> result.records.head()                                             # doctest: +SKIP

Heavy pieces (llama.cpp) are imported only when a backend is built.
"""

from .api import make_backend, synthesize  # noqa: E402
from .core.errors import BackendError, LLMSynthorError, ModelFileError, ProposalError, SpecError  # noqa: E402
from .core.tables import Targets  # noqa: E402
from .core.version import __version__  # noqa: E402, F401
from .declarations.spec import Spec, load_spec, parse_spec  # noqa: E402
from .declarations.targets import load_targets  # noqa: E402
from .shapes.flat.synthesizer import SynthesisResult, Synthesizer  # noqa: E402

__all__ = [
    "BackendError", "LLMSynthorError", "ModelFileError", "ProposalError", "SpecError",
    "Spec", "SynthesisResult", "Synthesizer", "Targets",
    "load_spec", "load_targets", "make_backend", "parse_spec", "synthesize",
]
