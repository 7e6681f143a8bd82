"""The ``Section`` base class (one per tab), its registry, and small UI helpers.

Adding a tab to the app is one class and one registration::

    @register_section
    class MySection(Section):
        title = "My tab"
        icon = "★"
        order = 40

        def __init__(self, **params):
            super().__init__(**params)
            self._layout = pn.Column(...)

        def __panel__(self):
            return self._layout

Every module of the ``fraud_app.ui`` package is imported by :func:`discover_sections`,
so a section in a new module under ``fraud_app/ui/`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import html
import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import panel as pn
import param

from fraud_app.ui.state import AppState
from fraud_app.ui.theme import stylesheet

log = logging.getLogger(__name__)

S = TypeVar("S", bound=type["Section"])
F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[str, type[Section]] = {}
#: Modules of ``fraud_app.ui`` that hold no sections.
_NOT_SECTIONS = frozenset({"app", "base", "charts", "state", "theme", "warmup"})


class Section(pn.viewable.Viewer):
    """One tab of the app: a title, an icon, and ``__panel__``.

    Subclasses set the class attributes ``title``, ``icon`` (a short glyph shown
    before the title) and ``order`` (tabs are sorted by it), build their widgets in
    ``__init__`` and return their layout from ``__panel__``.
    """

    title: ClassVar[str] = "Section"
    icon: ClassVar[str] = ""
    order: ClassVar[int] = 100

    state = param.ClassSelector(
        class_=AppState, doc="The session's shared state (data set, active model, latest results).",
    )

    def __init__(self, **params: Any) -> None:
        owns_state = params.get("state") is None
        if owns_state:
            params["state"] = AppState()
        super().__init__(**params)
        self._owns_state = owns_state

    def _load_if_standalone(self) -> None:
        """A section used on its own (no ``state`` given, e.g. in a notebook) loads the data set itself.

        Call it at the end of ``__init__``; the load runs once the page is on screen
        (``pn.state.onload``; at once outside a server). In the app, ``FraudApp`` loads it.
        """
        if self._owns_state and self.state.dataset is None:
            pn.state.onload(self._load_own_dataset)

    def _load_own_dataset(self) -> None:
        if self.state.dataset is not None:
            return
        try:
            self.state.load_dataset()
        except Exception as exc:
            notify_error("Could not load the data set", exc)

    @classmethod
    def label(cls) -> str:
        """The tab label: icon and title."""
        return f"{cls.icon} {cls.title}".strip()

    def __panel__(self) -> pn.viewable.Viewable:
        raise NotImplementedError(f"{type(self).__name__} must implement __panel__")


def register_section(cls: S) -> S:
    """Class decorator: add a :class:`Section` subclass to the app's tabs.

    Registering the same class again is a no-op; a different class with the same
    title replaces the old one (module reloads in development).
    """
    if not (isinstance(cls, type) and issubclass(cls, Section)):
        raise TypeError(f"register_section expects a Section subclass, got {cls!r}")
    _REGISTRY[cls.title] = cls
    return cls


def unregister_section(cls: type[Section]) -> None:
    """Remove a section from the registry (tests, plugins)."""
    if _REGISTRY.get(cls.title) is cls:
        del _REGISTRY[cls.title]


def discover_sections() -> None:
    """Import every module of the ``fraud_app.ui`` package so its sections register."""
    package = importlib.import_module("fraud_app.ui")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_SECTIONS and not info.name.startswith("_"):
            importlib.import_module(f"fraud_app.ui.{info.name}")


def registered_sections() -> list[type[Section]]:
    """The registered sections, sorted by ``order`` then ``title``."""
    return sorted(_REGISTRY.values(), key=lambda cls: (cls.order, cls.title))


def notify_error(message: str, exc: BaseException | None = None) -> None:
    """Log an error (with its traceback) and show it as a notification when a page is open."""
    if exc is not None:
        log.error("%s: %s", message, exc, exc_info=exc)
        text = f"{message}: {exc}"
    else:
        log.error("%s", message)
        text = message
    notifications = pn.state.notifications
    if notifications is not None:
        notifications.error(text, duration=10_000)


def catch_and_notify(message: str) -> Callable[[F], F]:
    """Decorator for callbacks: an exception is logged and notified, not swallowed silently.

    The exception does not propagate (a callback has no caller that could handle it);
    the failure is visible to the user and in the log.
    """

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                notify_error(message, exc)
                return None

        return wrapper  # type: ignore[return-value]

    return decorator


def card(title: str, *objects: Any, **params: Any) -> pn.Column:
    """A titled card: a bordered Column (one Panel object plus its title; ``pn.Card`` costs far more)."""
    heading = pn.pane.HTML(f"<div style='font-weight:600;font-size:1.05em;margin:2px 0'>{html.escape(title)}</div>",
                           margin=(2, 5), sizing_mode="stretch_width")
    params = {"sizing_mode": "stretch_width", "margin": (5, 5), **params}
    return pn.Column(heading, *objects, css_classes=["fds-card", *params.pop("css_classes", [])],
                     stylesheets=[stylesheet("cards")], **params)


@contextlib.contextmanager
def busy(*objects: Any, attribute: str = "loading") -> Iterator[None]:
    """Set ``loading`` (or ``attribute``) on Panel objects for the block, always resetting it.

    The flag goes back to ``False`` in ``finally``, so an exception never leaves a
    spinner or a disabled button behind.
    """
    for obj in objects:
        setattr(obj, attribute, True)
    try:
        yield
    finally:
        for obj in objects:
            setattr(obj, attribute, False)


__all__ = [
    "Section", "busy", "card", "catch_and_notify", "discover_sections", "notify_error",
    "register_section", "registered_sections", "unregister_section",
]
