"""Notebook 00's check that widgets work: a button that places an order in the kernel.

If clicking changes the text, the browser, the kernel and the widget manager all talk to each
other, and every interactive piece of the course will work too.
"""

from __future__ import annotations

import ipywidgets as widgets

from ..messages import event
from .common import styled_button


class WidgetCheck:
    """A button and a view: each click makes an ``OrderPlaced`` event in the kernel."""

    def __init__(self):
        self.orders: list = []
        self.button = styled_button("Place an order", "eda-widget-check-button",
                                    "Make an OrderPlaced event in the kernel", "primary")
        self.button.add_class("eda-control")
        self.view = widgets.HTML()
        self.view.add_class("eda-view")
        self.button.on_click(lambda _: self.place())
        self.root = widgets.VBox([self.button, self.view])
        self.root.add_class("eda-widget-check")
        self.redraw()

    def place(self) -> None:
        n = len(self.orders) + 1
        self.orders.append(event("OrderPlaced", f"order-{n}", {"order": n}))
        self.redraw()

    def redraw(self) -> None:
        if not self.orders:
            self.view.value = "No orders yet: click the button."
        else:
            last = self.orders[-1]
            self.view.value = (f"<b>Widgets work.</b> {len(self.orders)} order(s) placed; the "
                               f"last one is <code>{last.type}</code> for <code>{last.key}</code>.")

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
