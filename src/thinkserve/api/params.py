"""Parameter checks shared by both dialects, with Model Studio's messages (imports core).

Both dialects name these parameters the same way, so the messages can name them too. Reading the
body itself is ``api.body``; checks against the served model's limits are ``service.validation``.
"""

from __future__ import annotations

from thinkserve.core.errors import InvalidParameter
from thinkserve.core.types import SamplingParams

_DEFAULT = SamplingParams()

# Upper bounds Model Studio does not state. repetition_penalty: 1.0 is none and values past 2.0
# make every seen token all but unsayable; without a bound, 1e300 reached the C sampler as inf.
REPETITION_PENALTY_MAX = 2.0
# stop: OpenAI takes at most 4 strings, Model Studio states no count. 16 short strings cover every
# real use, and bound the per-token work of the stop matcher (500k of them stalled the server).
STOP_COUNT_MAX = 16
STOP_LENGTH_MAX = 256


def sampling_params(
    *,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    seed: int | None,
    repetition_penalty: float | None,
    presence_penalty: float | None,
) -> SamplingParams:
    """Validate and fill defaults; raises ``InvalidParameter`` with the cloud's wording."""
    if temperature is not None and not 0.0 <= temperature < 2.0:
        raise InvalidParameter("Temperature should be in [0.0, 2.0)", param="temperature")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InvalidParameter("Range of top_p should be (0.0, 1.0]", param="top_p")
    if top_k is not None and top_k < 0:
        raise InvalidParameter("Parameter top_k be greater than or equal to 0", param="top_k")
    if seed is not None and not 0 <= seed < 2**63:
        raise InvalidParameter("Range of seed should be [0, 9223372036854775807]", param="seed")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise InvalidParameter("Repetition_penalty should be greater than 0.0", param="repetition_penalty")
    if repetition_penalty is not None and not repetition_penalty <= REPETITION_PENALTY_MAX:  # NaN too
        raise InvalidParameter(
            f"Repetition_penalty should be in (0.0, {REPETITION_PENALTY_MAX}]", param="repetition_penalty"
        )
    if presence_penalty is not None and not -2.0 <= presence_penalty <= 2.0:
        raise InvalidParameter("Presence_penalty should be in [-2.0, 2.0]", param="presence_penalty")
    return SamplingParams(
        temperature=_DEFAULT.temperature if temperature is None else temperature,
        top_p=_DEFAULT.top_p if top_p is None else top_p,
        # Model Studio: top_k of 0 or above 100 disables top-k.
        top_k=_DEFAULT.top_k if top_k is None else (0 if top_k > 100 else top_k),
        seed=seed,
        repetition_penalty=_DEFAULT.repetition_penalty if repetition_penalty is None else repetition_penalty,
        presence_penalty=_DEFAULT.presence_penalty if presence_penalty is None else presence_penalty,
    )


def stop_strings(stop: tuple[str, ...]) -> tuple[str, ...]:
    """``stop`` within its caps: at most ``STOP_COUNT_MAX`` strings of ``STOP_LENGTH_MAX`` characters."""
    if len(stop) > STOP_COUNT_MAX:
        raise InvalidParameter(f"The stop parameter must have at most {STOP_COUNT_MAX} strings", param="stop")
    if any(len(s) > STOP_LENGTH_MAX for s in stop):
        raise InvalidParameter(
            f"Each string of the stop parameter must be at most {STOP_LENGTH_MAX} characters", param="stop"
        )
    return stop


def check_n(n: int | None) -> None:
    if n is not None and not 1 <= n <= 4:
        raise InvalidParameter("Range of n should be [1, 4]", param="n")
    if n is not None and n > 1:
        raise InvalidParameter("thinkserve answers one choice per request: n must be 1", param="n")


def refuse_unserved(*, n: int | None, logprobs: bool | None) -> None:
    """Parameters both dialects have and thinkserve does not serve yet: a clear 400 each."""
    check_n(n)
    if logprobs:
        raise unsupported("logprobs")


def unsupported(name: str) -> InvalidParameter:
    """A parameter Model Studio has and thinkserve does not serve yet: say so, never ignore it."""
    return InvalidParameter(f"The {name} parameter is not supported by thinkserve yet.", param=name)
