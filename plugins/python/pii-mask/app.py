"""pii-mask@0.1.0: masks personal data in an audit event before it is forwarded.

A hookflow plugin written in Python and built into a WebAssembly component with
componentize-py against the `plugin` world in `wit/plugin.wit` (see ../build.sh).

Input:  {"data": <any JSON>, "fields": ["userEmail", "ip"]?}
Output: {"data": <data, masked>, "masked": <number of values masked>}

E-mail addresses keep the first character of the local part and the domain
(`alice@example.com` -> `a***@example.com`); IPv4 addresses keep their /24
(`203.0.113.7` -> `203.0.113.x`); IPv6 addresses keep their /48
(`2001:db8:85a3::8a2e:370:7334` -> `2001:db8:85a3::x`). Without `fields`, every string
value in `data` is scanned; with `fields`, only values (at any depth) under keys with
those names are. Object keys, numbers and booleans are never changed. Masking is
idempotent: masked output passes through unchanged.
"""

import ipaddress
import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import log
from wit_world.imports.types import Descriptor, RunContext, StepError

NAME = "pii-mask"
VERSION = "0.1.0"

INPUT_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "additionalProperties": False,
    "properties": {
        "data": {
            "description": "The event (any JSON) to mask; usually {{trigger.body}}.",
        },
        "fields": {
            "description": "Only mask values under keys with these names (at any depth). "
            "Default: every string value.",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "uniqueItems": True,
        },
    },
}

# The local part excludes `*` so that masked addresses are not masked again.
EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-]+)@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63})(?![A-Za-z0-9-])"
)

# Dotted quads not embedded in a longer dotted number (`1.2.3.4.5`) or word.
IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?!\w|\.\d)")

# Candidates only: anything with two or more colons is checked by `ipaddress`.
# An optional zone (`fe80::1%eth0`) is kept.
IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.%])([0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*?)(%[\w-]+)?(\.*)(?![\w:%.])"
)


def mask_email(match):
    return f"{match.group(1)[0]}***@{match.group(2)}"


def mask_ipv4(match):
    octets = match.groups()
    if any(int(o) > 255 for o in octets):
        return match.group(0)
    return f"{octets[0]}.{octets[1]}.{octets[2]}.x"


def mask_ipv6(match):
    # A sentence may end right after the address ("from 2001:db8::1."): the dots and the
    # zone are kept as they are.
    core, zone, dots = match.group(1), match.group(2) or "", match.group(3)
    suffix = zone + dots
    try:
        address = ipaddress.IPv6Address(core)
    except ValueError:
        return match.group(0)
    mapped = address.ipv4_mapped
    if mapped is not None:
        a, b, c, _ = str(mapped).split(".")
        return f"::ffff:{a}.{b}.{c}.x{suffix}"
    groups = address.exploded.split(":")[:3]
    prefix = ipaddress.IPv6Address(":".join(groups + ["0"] * 5)).compressed
    # `2001:db8:85a3::` -> `2001:db8:85a3::x`; `::` (all-zero prefix) -> `::x`.
    return f"{prefix.rstrip(':')}::x{suffix}"


class Masker:
    def __init__(self, fields):
        self.fields = set(fields) if fields is not None else None
        self.count = 0

    def text(self, value):
        for pattern, replace in ((EMAIL, mask_email), (IPV6_CANDIDATE, mask_ipv6), (IPV4, mask_ipv4)):
            value = pattern.sub(lambda m: self._counted(m, replace), value)
        return value

    def _counted(self, match, replace):
        masked = replace(match)
        if masked != match.group(0):
            self.count += 1
        return masked

    def value(self, value, inside_field):
        """Masks `value`; `inside_field` is true when strings here are to be masked."""
        if isinstance(value, str):
            return self.text(value) if inside_field else value
        if isinstance(value, list):
            return [self.value(v, inside_field) for v in value]
        if isinstance(value, dict):
            return {
                k: self.value(v, inside_field or (self.fields is not None and k in self.fields))
                for k, v in value.items()
            }
        return value


def fatal(message):
    return Err(StepError(message=message, retryable=False))


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Descriptor:
        return Descriptor(
            name=NAME,
            version=VERSION,
            description="Mask e-mail and IP addresses in an event before it is forwarded",
            input_schema=json.dumps(INPUT_SCHEMA),
            side_effects=False,
        )

    def run(self, context: RunContext, input: str) -> str:
        try:
            return mask_request(input)
        except Err:
            raise
        except Exception as e:  # a bug here must fail the step with a message, not trap
            raise fatal(f"pii-mask failed: {type(e).__name__}: {e}")


def mask_request(input):
    try:
        request = json.loads(input)
    except ValueError as e:
        raise fatal(f"input is not JSON: {e}")
    if not isinstance(request, dict) or "data" not in request:
        raise fatal("input must be an object with `data`")
    fields = request.get("fields")
    if fields is not None and (
        not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)
    ):
        raise fatal("`fields` must be a list of key names")
    masker = Masker(fields)
    data = masker.value(request["data"], inside_field=fields is None)
    scope = "all string values" if fields is None else "fields " + ", ".join(fields)
    log.log(log.Level.INFO, f"masked {masker.count} value(s) in {scope}")
    try:
        return json.dumps({"data": data, "masked": masker.count}, allow_nan=False)
    except ValueError as e:
        raise fatal(f"data cannot be written back as JSON: {e}")
