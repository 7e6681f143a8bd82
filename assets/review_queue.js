// The Monitoring tab's review queue (fraud_app.ui.monitoring.views.ReviewQueueTable).
// The server sends the rows as a short list; the table is built here, so a new queue costs the
// server's event loop one small property update. A click sends {id, label} back to the server.
const COLUMNS = [
  ["id", "id"], ["created_at", "created (UTC)"], ["source", "source"],
  ["fraud_probability", "P(fraud)"], ["verdict", "verdict"], ["top_contributions", "top contributions"],
]
const ACTIONS = [["fraud", "mon-mark-fraud", "Fraud"], ["legitimate", "mon-mark-legit", "Legitimate"]]

export function render({ model, el }) {
  const table = document.createElement("table")
  table.className = "mon-queue"
  const head = table.createTHead().insertRow()
  for (const [, title] of [...COLUMNS, ["", ""], ["", ""]]) {
    const th = document.createElement("th")
    th.textContent = title
    head.appendChild(th)
  }
  const body = table.createTBody()
  el.appendChild(table)

  function draw() {
    body.replaceChildren()
    for (const row of model.rows) {
      const tr = body.insertRow()
      tr.dataset.id = String(row.id)
      for (const [field] of COLUMNS) {
        const td = tr.insertCell()
        td.dataset.field = field
        td.textContent = row[field] ?? ""
      }
      for (const [label, cls, text] of ACTIONS) {
        const button = document.createElement("button")
        button.className = cls
        button.type = "button"
        button.textContent = text
        button.addEventListener("click", () => {
          for (const other of tr.querySelectorAll("button")) other.disabled = true  // one verdict per row
          model.send_msg({ id: row.id, label })
        })
        tr.insertCell().appendChild(button)
      }
    }
  }

  draw()
  model.on("rows", draw)
}
