// A static Bokeh chart embedded from its JSON item (fraud_app.ui.charts.EmbeddedChart).
// The server renders each chart once per process; a session only carries the item's text,
// and BokehJS builds the plot here, in the browser (hover, pan and zoom stay client-side).
export function render({ model, el }) {
  const holder = document.createElement("div")
  holder.className = "fds-embedded"
  el.appendChild(holder)
  let views = null
  let queue = Promise.resolve()

  function clear() {
    if (views !== null) {
      for (const view of views.roots) view.remove()
      views = null
    }
    holder.replaceChildren()
  }

  function draw() {
    queue = queue.then(async () => {
      clear()
      if (!model.item) {
        const note = document.createElement("div")
        note.className = "fds-skeleton"
        note.textContent = model.placeholder
        holder.appendChild(note)
        return
      }
      views = await window.Bokeh.embed.embed_item(JSON.parse(model.item), holder)
    }).catch((error) => {
      holder.replaceChildren()
      const note = document.createElement("div")
      note.className = "fds-skeleton"
      note.textContent = `Could not draw the chart: ${error}`
      holder.appendChild(note)
    })
  }

  model.on("item", draw)
  model.on("remove", clear)
  draw()
}
