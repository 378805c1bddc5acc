"""The kernel policy: every kernel choice still open, in one frozen object.

    Policy(dw_forward="rows")                 # an object
    Policy.parse("dw_forward=rows,autotune=false")   # its compact form (`Policy.key`)
    Policy.from_file("policy.json")           # a JSON object of fields
    CNNC_KERNELS_POLICY="dw_forward=rows"     # the process default, or "@policy.json"

`kernels.conv2d(..., policy=...)`, generated modules (`runtime.set_kernel_policy`,
`cnnc.compile(..., kernel_policy=...)`) and the tools take a policy; without one a call uses
`default_policy()`, built once from CNNC_KERNELS_POLICY. `Policy.from_environment` is the only
reader of any CNNC_KERNELS_ variable (a test scans the source tree for others).

The fields (docs/kernels.md, "Policy", names the measurement that will settle each choice):
  dw_forward     auto | rows | taps          the depthwise forward's loop (auto: rows above 9 taps)
  dw_input_grad  auto | gather | flipped     the stride-1 depthwise input gradient (auto: flipped
                                             where the forward takes rows)
  dw_wgrad       auto | per-tap | tap-blocks the weight gradient's tiles (auto: the autotuner picks)
  dw_weights     tap-major | as-is           the depthwise filter operand: a tap-major copy, or torch's
  dispatch       measured | triton | torch   which convs a generated module sends to the Triton kernels
                                             (`dispatch.choose`): measured, only where a committed
                                             measurement for the device shows them faster than cuDNN;
                                             triton, every conv they take; torch, none
  dispatch_timing auto | host | device       which measured time decides: host (a call's time with its host
                                             work, eager) or device (the GPU's alone: torch.compile, CUDA
                                             graphs); auto: device while compiling or capturing, else host
  cudnn_epilogue ops | fused                 the cuDNN route's epilogue: ops, F.conv2d then torch ops (which
                                             torch.compile fuses); fused, torch.cudnn_convolution_relu /
                                             _add_relu where the activation is relu and nothing traces
  autotune       true | false                false: the first config of each (pruned) autotune space,
                                             nothing timed (test runs that compile hundreds of kernels)
  interpret_cpu  true | false                false: CPU tensors take the torch path even when
                                             TRITON_INTERPRET=1 (the interpreter is for kernel tests)
A policy is part of every autotune key and remembered config (`_runtime.launch`): two policies
never share a tuned config.
"""

import contextlib
import dataclasses
import functools
import json
import os

# The kernel choices: field -> allowed values, the default (`Policy`'s) first.
CHOICES = {
    "dw_forward": ("auto", "rows", "taps"),
    "dw_input_grad": ("auto", "gather", "flipped"),
    "dw_wgrad": ("auto", "per-tap", "tap-blocks"),
    "dw_weights": ("tap-major", "as-is"),
}
# Where a generated module's convs run and how the cuDNN route ends (`dispatch.choose`): routing, not
# kernel code, so not part of `choices_key` (autotune keys).
ROUTING = {
    "dispatch": ("measured", "triton", "torch"),
    "dispatch_timing": ("auto", "host", "device"),
    "cudnn_epilogue": ("ops", "fused"),
}
# The switches for tests and tools (booleans).
SWITCHES = ("autotune", "interpret_cpu")

ENVIRONMENT_VARIABLE = "CNNC_KERNELS_POLICY"
# Variables read before the policy existed, and what to do instead (`from_environment` refuses them
# rather than ignore them silently).
RETIRED_VARIABLES = {
    "CNNC_KERNELS_DW_FORWARD": f"set {ENVIRONMENT_VARIABLE}=dw_forward=<auto|rows|taps>",
    "CNNC_KERNELS_DW_INPUT_GRAD": f"set {ENVIRONMENT_VARIABLE}=dw_input_grad=<auto|gather|flipped>",
    "CNNC_KERNELS_DW_WGRAD": f"set {ENVIRONMENT_VARIABLE}=dw_wgrad=<auto|per-tap|tap-blocks>",
    "CNNC_KERNELS_DW_WEIGHTS": f"set {ENVIRONMENT_VARIABLE}=dw_weights=<tap-major|as-is>",
    "CNNC_KERNELS_AUTOTUNE": f"set {ENVIRONMENT_VARIABLE}=autotune=false",
    "CNNC_KERNELS_CPU": f"set {ENVIRONMENT_VARIABLE}=interpret_cpu=false",
    "CNNC_KERNELS_REMEMBER": "configs are always remembered (settled by a measurement: docs/kernels.md, \"Policy\")",
}


def _format(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else value


@dataclasses.dataclass(frozen=True)
class Policy:
    """Every kernel choice that is still open (see the module docstring). Frozen and hashable.

    `key`: the compact string form, fields that differ from the default as name=value, sorted,
    comma-separated ("" for the default policy); `Policy.parse(key)` gives the policy back.
    `choices_key`: the same for the kernel choices alone (the dw_* fields), what autotune keys
    carry (`autotune` and `interpret_cpu` never change which config is fastest)."""

    dw_forward: str = "auto"
    dw_input_grad: str = "auto"
    dw_wgrad: str = "auto"
    dw_weights: str = "tap-major"
    dispatch: str = "measured"
    dispatch_timing: str = "auto"
    cudnn_epilogue: str = "ops"
    autotune: bool = True
    interpret_cpu: bool = True

    def __post_init__(self):
        for name, allowed in {**CHOICES, **ROUTING}.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"kernel policy: {name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in SWITCHES:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"kernel policy: {name} must be true or false; got {value!r}")
        # plain attributes, computed once: read on every call (the operators carry `key`)
        changed = sorted((f.name, _format(getattr(self, f.name))) for f in dataclasses.fields(self)
                         if getattr(self, f.name) != f.default)
        object.__setattr__(self, "key", ",".join(f"{k}={v}" for k, v in changed))
        object.__setattr__(self, "choices_key", ",".join(f"{k}={v}" for k, v in changed if k in CHOICES))

    @classmethod
    def parse(cls, text: str) -> "Policy":
        """The policy whose `key` is `text`: comma-separated name=value pairs, any order, fields not
        named at their defaults; booleans as true or false. Unknown fields, repeated fields and bad
        values are ValueErrors that name them."""
        if not isinstance(text, str):
            raise TypeError(f"kernel policy: expected a string such as 'dw_forward=rows', got {type(text).__name__}")
        fields = {}
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not sep:
                raise ValueError(f"kernel policy: expected name=value, got {item!r}")
            if name in fields:
                raise ValueError(f"kernel policy: {name} given twice")
            if name in SWITCHES:
                if value not in ("true", "false"):
                    raise ValueError(f"kernel policy: {name} must be true or false; got {value!r}")
                fields[name] = value == "true"
            else:
                fields[name] = value
        return cls._from_fields(fields)

    @classmethod
    def from_file(cls, path) -> "Policy":
        """The policy a JSON file holds: an object of fields, e.g. {"dw_forward": "rows", "autotune": false}."""
        with open(path) as f:
            try:
                fields = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"kernel policy file {path}: not JSON ({e})") from None
        if not isinstance(fields, dict):
            raise ValueError(f"kernel policy file {path}: expected a JSON object of fields, "
                             f"got {type(fields).__name__}")
        try:
            return cls._from_fields(fields)
        except ValueError as e:
            raise ValueError(f"kernel policy file {path}: {e}") from None

    @classmethod
    def from_environment(cls, environ=None) -> "Policy":
        """The policy CNNC_KERNELS_POLICY names: unset or empty, the default; "@path", `from_file(path)`;
        otherwise `parse` of its value. The only place that reads any CNNC_KERNELS_ variable; the
        variables that came before the policy (RETIRED_VARIABLES) are errors, not ignored."""
        environ = os.environ if environ is None else environ
        retired = sorted(name for name in environ if name.startswith("CNNC_KERNELS_") and name != ENVIRONMENT_VARIABLE)
        if retired:
            unknown = f"the one kernel variable is {ENVIRONMENT_VARIABLE}"
            raise ValueError("; ".join(f"{name} is no longer read: {RETIRED_VARIABLES.get(name, unknown)}"
                                       for name in retired))
        text = environ.get(ENVIRONMENT_VARIABLE, "").strip()
        try:
            return cls.from_file(text[1:]) if text.startswith("@") else cls.parse(text)
        except (ValueError, OSError) as e:
            raise ValueError(f"{ENVIRONMENT_VARIABLE}={text!r}: {e}") from None

    @classmethod
    def _from_fields(cls, fields: dict) -> "Policy":
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise ValueError(f"kernel policy: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                             f"the fields are {', '.join(known)}")
        return cls(**fields)


@functools.lru_cache(maxsize=None)
def parsed(key: str) -> Policy:
    """`Policy.parse`, cached: the operators receive the policy as its key string on every call."""
    return Policy.parse(key)


_default = None  # built on first use (`default_policy`)
_override = None  # set by `using_policy`


def default_policy() -> Policy:
    """The policy of calls that name none: `using_policy`'s, inside one; otherwise the one
    CNNC_KERNELS_POLICY names, read once, on first use."""
    global _default
    if _override is not None:
        return _override
    if _default is None:
        _default = Policy.from_environment()
    return _default


def resolve(policy) -> Policy:
    """A call's policy: None -> `default_policy()`; a Policy; or a key string (`Policy.parse`)."""
    if policy is None:
        return default_policy()
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        return parsed(policy)
    raise TypeError(f"policy: expected a kernels Policy, a policy string or None, got {type(policy).__name__}")


@contextlib.contextmanager
def using_policy(policy):
    """Within this block, `default_policy()` is `policy` (a Policy or a key string): for tests and
    tools; the previous default comes back after it."""
    global _override
    previous, _override = _override, resolve(policy)
    try:
        yield _override
    finally:
        _override = previous
