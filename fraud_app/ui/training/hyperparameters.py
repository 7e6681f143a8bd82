"""The Training tab's hyper-parameter widgets, built straight from each kind's one declaration.

Every kind declares its hyper-parameters once, in its nested ``Params`` (a
``param.Parameterized``, see :class:`fraud_app.models.base.ModelParams`): ``bounds`` are the hard
limits the model validates, ``softbounds`` the range a UI offers, ``doc`` the help text (the
CLI's ``--help`` reads the same). This tab holds one ``model_class(kind).Params()`` *instance*
per kind and session, and builds each widget from its Parameter with ``Widget.from_param``:
nothing is re-declared here.

The one exception is the aggregator's member list (a list of ``{"kind", "params"}`` specs, which
no single widget edits): :class:`AggregatorMembers` edits it as kinds x copies and one weight per
kind; its default and weight limits are read from the aggregator's declaration.
"""

from __future__ import annotations

import math
from typing import Any

import panel as pn
import param

from fraud_app.models import model_class
from fraud_app.models.base import ModelParams

#: The kind whose hyper-parameters are its members (and their weights).
AGGREGATOR = "aggregator"


def tunables(values: ModelParams) -> dict[str, Any]:
    """The UI-editable values of ``values`` (its declaration's tunables), for ``create(kind, **...)``."""
    return {name: getattr(values, name) for name in type(values).tunables()}


class AggregatorMembers(param.Parameterized):
    """The aggregator's members as the tab edits them: which kinds, how many copies, their weights.

    Copies of a kind differ by seed only: the aggregator seeds member *i* with its seed + *i*.
    ``params`` is the aggregator's own ``Params`` (its calibration); member kinds carry the
    settings of their own kind's ``Params`` (see :func:`fraud_app.ui.training.controller.model_params`).
    """

    members = param.ListSelector(default=[], objects=[], label="Members",
                                 doc="Member model kinds whose probabilities are averaged.")
    copies = param.Integer(default=1, bounds=(1, 5), label="Copies of each member",
                           doc="How many models of each chosen kind; copies differ by seed (the aggregator's "
                               "seed plus the member's position).")
    params = param.ClassSelector(class_=ModelParams, doc="The aggregator's own declared Params (calibration).")

    def __init__(self, **kwargs: Any) -> None:
        cls = model_class(AGGREGATOR)
        declared = cls.Params.param["members"]
        kinds = list(declared.objects_hint)
        default = [m if isinstance(m, str) else m["kind"] for m in declared.default]
        chosen = list(dict.fromkeys(default))
        counts = {default.count(kind) for kind in chosen}
        low, high = cls.WEIGHT_BOUNDS
        for kind in kinds:  # one weight per member kind (instance Parameters: this tab's own)
            self.param.add_parameter(self.weight_name(kind), param.Number(
                default=1.0, bounds=(float(low), float(high)), label=f"Weight of {kind.replace('_', ' ')}",
                doc=f"{cls.Params.param['weights'].doc} Weight of each {kind} member."))
        super().__init__(**kwargs)
        self.param.members.objects = kinds
        self.param.update(members=chosen, copies=counts.pop() if len(counts) == 1 else 1)
        if self.params is None:
            self.params = cls.Params()

    @property
    def member_kinds(self) -> list[str]:
        return list(self.param.members.objects)

    @staticmethod
    def weight_name(kind: str) -> str:
        """Name of the Parameter holding ``kind``'s weight."""
        return f"weight_{kind}"

    def member_list(self) -> list[str]:
        """The member kinds in order, each repeated ``copies`` times."""
        return [kind for kind in self.members for _ in range(int(self.copies))]

    def values(self) -> dict[str, Any]:
        """``members`` (kind names), ``weights`` (None when all members weigh the same), the aggregator's own."""
        members = self.member_list()
        weights = [float(getattr(self, self.weight_name(kind))) for kind in members]
        own = {k: v for k, v in tunables(self.params).items() if k not in ("members", "weights")}
        return {"members": members, "weights": None if len(set(weights)) <= 1 else weights, **own}


def hyperparameter_values(kind: str) -> ModelParams | AggregatorMembers:
    """This tab's editable hyper-parameters of ``kind``: an instance of its declared ``Params``."""
    return AggregatorMembers() if kind == AGGREGATOR else model_class(kind).Params()


def _step(bounds: tuple[float | None, float | None] | None) -> float:
    """A round input step of about a twentieth of the range."""
    if not bounds or bounds[0] is None or bounds[1] is None or bounds[1] <= bounds[0]:
        return 0.1
    return float(10 ** math.floor(math.log10((bounds[1] - bounds[0]) / 20)))


def widget_for(values: param.Parameterized, parameter_name: str, css_kind: str | None = None,
               **kwargs: Any) -> pn.widgets.Widget:
    """A new widget bound to ``values.<parameter_name>`` with ``from_param``.

    Numbers get an input whose range is the declaration's ``softbounds`` (the hard ``bounds``
    when it has none); the help is its ``doc``. ``kwargs`` go to the widget. The widget
    carries the CSS class ``hp-<kind>-<parameter>`` (browser tests and styling find it by that).
    """
    parameter = values.param[parameter_name]
    kwargs.setdefault("css_classes", [f"hp-{css_kind or type(values).__name__}-{parameter_name}"])
    if isinstance(parameter, param.ListSelector):
        cls = pn.widgets.MultiChoice
    elif isinstance(parameter, param.Selector):
        cls = pn.widgets.Select
        if None in parameter.objects:
            return _select_with_none(values, parameter_name, **kwargs)
    elif isinstance(parameter, param.Boolean):
        cls = pn.widgets.Checkbox
    elif isinstance(parameter, param.Number):
        low, high = parameter.softbounds or parameter.bounds or (None, None)
        kwargs.update(start=low, end=high)
        if parameter.allow_None:
            kwargs.setdefault("placeholder", "None (no limit)")
        cls = pn.widgets.IntInput if isinstance(parameter, param.Integer) else pn.widgets.FloatInput
        if cls is pn.widgets.FloatInput:
            kwargs.setdefault("step", _step((low, high)))
    else:
        raise TypeError(f"no widget for {type(parameter).__name__} {parameter_name!r}")
    if "description" in cls.param:
        kwargs.setdefault("description", parameter.doc)
    return cls.from_param(parameter, **kwargs)


def _select_with_none(values: param.Parameterized, parameter_name: str, **kwargs: Any) -> pn.widgets.Select:
    """A Select for a Selector that has None among its choices, shown as the text "None".

    Panel's Select sends a None value to the browser as no selection at all (an empty box), so
    this one holds text labels and translates both ways: the Parameter keeps the real None.
    """
    parameter = values.param[parameter_name]

    def label_of(value: Any) -> str:
        return "None" if value is None else str(value)

    by_label = {label_of(o): o for o in parameter.objects}
    kwargs.setdefault("description", parameter.doc)
    select = pn.widgets.Select(name=parameter.label, options=list(by_label),
                               value=label_of(getattr(values, parameter_name)), **kwargs)
    select.param.watch(lambda event: setattr(values, parameter_name, by_label[event.new]), "value")
    values.param.watch(lambda event: setattr(select, "value", label_of(event.new)), parameter_name)
    return select


def hyperparameter_widgets(kind: str, values: ModelParams, **kwargs: Any) -> list[pn.widgets.Widget]:
    """New widgets for every tunable of ``values`` (one call per place they are shown)."""
    return [widget_for(values, name, kind, **kwargs) for name in type(values).tunables()]


__all__ = ["AGGREGATOR", "AggregatorMembers", "hyperparameter_values", "hyperparameter_widgets", "tunables",
           "widget_for"]
