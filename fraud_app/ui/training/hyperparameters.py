"""Hyper-parameters of each model kind as bounded Parameters, and the widgets that edit them.

The Parameterized classes are generated once per process from
:data:`fraud_app.models.HYPERPARAMETERS` (``{"default", "bounds" | "objects", "doc"}`` per
tunable), so a kind's tunables, bounds and docs live in one place: the model class. Each
Training tab builds its own *instances* (and widgets), never shared between sessions.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import panel as pn
import param

from fraud_app.models import HYPERPARAMETERS

#: The kind whose hyper-parameters are its members (and their weights).
AGGREGATOR = "aggregator"
#: How a None choice of a Selector is shown (Panel's Select cannot show a None value).
NONE_TEXT = "None"


class HyperParameters(param.Parameterized):
    """The tunable hyper-parameters of one model kind (subclasses are generated per kind)."""

    kind: ClassVar[str] = ""
    #: Names of the tunables, in the order the model class lists them.
    tunables: ClassVar[tuple[str, ...]] = ()

    def values(self) -> dict[str, Any]:
        """The current values, as ``create(kind, **values)`` accepts them (``"None"`` choices as None)."""
        values = {}
        for name in self.tunables:
            value = getattr(self, name)
            if isinstance(self.param[name], param.Selector) and value == NONE_TEXT:
                value = None
            values[name] = value
        return values


class AggregatorHyperParameters(HyperParameters):
    """Members of a soft-voting aggregator: which kinds, how many copies of each, their weights.

    Copies of a kind differ by seed only: the aggregator seeds a member given by kind with its
    own seed plus the member's position, so three LightGBM copies sample different rows and
    columns.
    """

    kind: ClassVar[str] = AGGREGATOR
    #: The member kinds a user can choose from.
    member_kinds: ClassVar[tuple[str, ...]] = ()

    def weight_name(self, kind: str) -> str:
        """Name of the Parameter holding ``kind``'s weight."""
        return f"weight_{kind}"

    def member_list(self) -> list[str]:
        """The member kinds in order, each repeated ``copies`` times."""
        return [kind for kind in self.members for _ in range(int(self.copies))]

    def values(self) -> dict[str, Any]:
        """``members`` (kind names) and ``weights`` (None when all members weigh the same)."""
        members = self.member_list()
        weights = [float(getattr(self, self.weight_name(kind))) for kind in members]
        same = len(set(weights)) <= 1
        return {"members": members, "weights": None if same else weights}


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parameter_for(name: str, spec: dict[str, Any]) -> param.Parameter:
    """One Parameter from a ``HYPERPARAMETERS`` entry.

    ``objects`` give a Selector (a ListSelector when the default is a list, a Boolean when the
    objects are True/False; a None object is offered as the text ``"None"``, which
    :meth:`HyperParameters.values` turns back into None); ``bounds`` give a
    bounded Integer (integer default, or None with integer bounds) or Number; a None default
    is allowed where the model accepts it (e.g. an unlimited ``max_depth``).
    """
    default = spec.get("default")
    doc = spec.get("doc") or _label(name)
    label = _label(name)
    if "objects" in spec:
        objects = list(spec["objects"])
        if isinstance(default, bool) and all(isinstance(o, bool) for o in objects):
            return param.Boolean(default=default, label=label, doc=doc)
        if isinstance(default, (list, tuple)):
            return param.ListSelector(default=list(default), objects=objects, label=label, doc=doc)
        objects = [NONE_TEXT if o is None else o for o in objects]
        default = NONE_TEXT if default is None else default
        return param.Selector(default=default, objects=objects, label=label, doc=doc)
    if "bounds" in spec:
        bounds = tuple(spec["bounds"])
        allow_none = default is None
        if _is_int(default) or (default is None and all(_is_int(b) for b in bounds if b is not None)):
            return param.Integer(default=default, bounds=bounds, allow_None=allow_none, label=label, doc=doc)
        return param.Number(default=None if default is None else float(default), bounds=bounds,
                            allow_None=allow_none, label=label, doc=doc)
    if isinstance(default, bool):
        return param.Boolean(default=default, label=label, doc=doc)
    raise ValueError(f"hyper-parameter {name!r} needs 'objects' or 'bounds' in HYPERPARAMETERS, got {spec!r}")


@functools.cache
def hyperparameter_class(kind: str) -> type[HyperParameters]:
    """The HyperParameters subclass of ``kind`` (built once per process)."""
    try:
        spec = HYPERPARAMETERS[kind]
    except KeyError:
        raise ValueError(f"no hyper-parameters are described for model kind {kind!r}") from None
    class_name = "".join(part.capitalize() for part in kind.split("_")) + "HyperParameters"
    if kind == AGGREGATOR:
        members = spec["members"]
        member_kinds = tuple(members["objects"])
        default = list(members["default"])
        # The default as kinds x copies: ["lightgbm"] * 3 is LightGBM, 3 copies.
        kinds = list(dict.fromkeys(default))
        counts = {default.count(kind) for kind in kinds}
        copies = counts.pop() if len(counts) == 1 else 1
        low, high = spec.get("weights", {}).get("bounds", (0.0, 100.0))
        params: dict[str, Any] = {
            "members": param.ListSelector(
                default=kinds, objects=list(member_kinds), label="Members",
                doc=members.get("doc") or "Member model kinds whose probabilities are averaged."),
            "copies": param.Integer(
                default=copies, bounds=(1, 5), label="Copies of each member",
                doc="How many models of each chosen kind; copies differ by seed (the aggregator's seed "
                    "plus the member's position)."),
        }
        for member in member_kinds:
            params[f"weight_{member}"] = param.Number(
                default=1.0, bounds=(float(low), float(high)), label=f"Weight of {_label(member).lower()}",
                doc=f"Weight of the {member} member's probability in the average (used when it is a member).")
        attrs = {**params, "member_kinds": member_kinds, "tunables": ("members", "copies"),
                 "__doc__": "Hyper-parameters of the aggregator: members and their weights."}
        return type(class_name, (AggregatorHyperParameters,), attrs)
    params = {name: parameter_for(name, entry) for name, entry in spec.items()}
    attrs = {**params, "kind": kind, "tunables": tuple(params),
             "__doc__": f"Tunable hyper-parameters of the {kind} model."}
    return type(class_name, (HyperParameters,), attrs)


def _step(bounds: tuple[float | None, float | None] | None) -> float:
    """A round input step of about a twentieth of the range."""
    if not bounds or bounds[0] is None or bounds[1] is None or bounds[1] <= bounds[0]:
        return 0.1
    return float(10 ** math.floor(math.log10((bounds[1] - bounds[0]) / 20)))


def widget_for(values: param.Parameterized, parameter_name: str, **kwargs: Any) -> pn.widgets.Widget:
    """A new widget bound to ``values.<parameter_name>`` (bounded inputs, selects, multi-choice).

    ``kwargs`` go to the widget (``name`` overrides the label). The widget carries the CSS
    class ``hp-<kind>-<parameter>`` (browser tests and styling find it by that).
    """
    parameter = values.param[parameter_name]
    kind = getattr(values, "kind", "") or type(values).__name__
    kwargs.setdefault("css_classes", [f"hp-{kind}-{parameter_name}"])
    if isinstance(parameter, param.ListSelector):
        return pn.widgets.MultiChoice.from_param(parameter, **kwargs)
    if isinstance(parameter, param.Selector):
        return pn.widgets.Select.from_param(parameter, **kwargs)
    if isinstance(parameter, param.Boolean):
        return pn.widgets.Checkbox.from_param(parameter, **kwargs)
    if parameter.allow_None:
        kwargs.setdefault("placeholder", "None (no limit)")
    if isinstance(parameter, param.Integer):
        return pn.widgets.IntInput.from_param(parameter, **kwargs)
    if isinstance(parameter, param.Number):
        return pn.widgets.FloatInput.from_param(parameter, step=_step(parameter.bounds), **kwargs)
    raise TypeError(f"no widget for {type(parameter).__name__} {parameter_name!r}")


def hyperparameter_widgets(values: HyperParameters, **kwargs: Any) -> list[pn.widgets.Widget]:
    """New widgets for every tunable of ``values`` (one call per place they are shown)."""
    return [widget_for(values, name, **kwargs) for name in values.tunables]


__all__ = [
    "AGGREGATOR", "NONE_TEXT", "AggregatorHyperParameters", "HyperParameters", "hyperparameter_class",
    "hyperparameter_widgets", "parameter_for", "widget_for",
]
