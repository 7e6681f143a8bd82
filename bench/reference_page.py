"""The reference page of ``bench/bench_page.py``: a plain Panel page on the same data.

What a competent Panel user writes without thinking about the event loop: three
dynamic tabs, the first holding a 10-row Tabulator, four hvplot charts and a Markdown
card, built in the session like Panel's getting-started examples (the data is cached
per process with ``pn.cache``). Serve it with ``panel serve bench/reference_page.py``.
"""

from __future__ import annotations

import hvplot.pandas  # noqa: F401
import numpy as np
import pandas as pd
import panel as pn

from fraud_app.data import load_transactions

pn.extension("tabulator", sizing_mode="stretch_width")


@pn.cache
def summaries() -> dict[str, pd.DataFrame]:
    frame = load_transactions()
    amount = np.log10(1 + frame["amount"])
    label = frame["is_fraud"].map({0: "clear", 1: "fraud"})
    hours = ((frame["time"] // 3600) % 24).astype(int)
    return {
        "head": frame.head(10),
        "balance": label.value_counts().rename_axis("class").reset_index(name="count"),
        "amount": pd.DataFrame({"log_amount": amount, "class": label}).sample(20_000, random_state=0),
        "hourly": pd.DataFrame({"hour": hours, "fraud": frame["is_fraud"]}).groupby("hour")["fraud"]
        .agg(["count", "mean"]).reset_index(),
        "v14": pd.DataFrame({"feature14": frame["feature14"], "class": label}).sample(20_000, random_state=0),
    }


data = summaries()
charts = [
    data["balance"].hvplot.bar(x="class", y="count", title="Transactions per class", height=300),
    data["amount"].hvplot.hist("log_amount", by="class", bins=50, alpha=0.5, title="Amount", height=300),
    data["hourly"].hvplot.line(x="hour", y="mean", title="Fraud rate by hour", height=300),
    data["v14"].hvplot.hist("feature14", by="class", bins=50, alpha=0.5, title="feature14", height=300),
]
first = pn.Column(
    pn.Card(pn.pane.Markdown("A reference page: the credit-card data set, four charts and a table."),
            title="About"),
    pn.widgets.Tabulator(data["head"], pagination="local", page_size=10, height=330),
    pn.Row(*charts[:2]),
    pn.Row(*charts[2:]),
)
pn.Tabs(
    ("Overview", first),
    ("Second", pn.pane.Markdown("Second tab")),
    ("Third", pn.pane.Markdown("Third tab")),
    dynamic=True,
).servable(title="Reference page")
