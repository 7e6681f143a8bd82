// A static Bokeh chart embedded from its JSON item (fraud_app.ui.charts.EmbeddedChart).
// The server renders each chart once per process; a session only carries the item's text,
// and BokehJS builds the plot here, in the browser (hover, pan and zoom stay client-side).
export function render({ model, el }) {
  let holder = null
  let views = null
  let queue = Promise.resolve()

  function note(target, text) {
    const line = document.createElement("div")
    line.className = "fds-skeleton"
    line.textContent = text
    target.appendChild(line)
  }

  // A replaced chart leaves the page at once; its Bokeh views are removed a moment later, once
  // BokehJS has finished the work it scheduled for them, and a failure there never stops a redraw.
  function retire(oldHolder, oldViews) {
    if (oldHolder !== null) oldHolder.remove()
    if (oldViews === null) return
    setTimeout(() => {
      const documents = window.Bokeh.documents
      for (const view of oldViews.roots) {
        const doc = view.model.document
        try {
          view.remove()
        } catch (error) {
          console.debug("an old chart view could not be removed", error)
        }
        const index = documents.indexOf(doc)  // embed_item registered the chart's own document
        if (index >= 0) documents.splice(index, 1)
      }
    }, 1000)
  }

  function draw() {
    queue = queue.then(async () => {
      const oldHolder = holder
      const oldViews = views
      holder = document.createElement("div")
      holder.className = "fds-embedded"
      el.appendChild(holder)
      views = null
      retire(oldHolder, oldViews)
      if (!model.item) {
        note(holder, model.placeholder)
        return
      }
      views = await window.Bokeh.embed.embed_item(JSON.parse(model.item), holder)
    }).catch((error) => {
      if (holder !== null) {
        holder.replaceChildren()
        note(holder, `Could not draw the chart: ${error}`)
      }
    })
  }

  model.on("item", draw)
  model.on("remove", () => {
    retire(holder, views)
    holder = null
    views = null
  })
  draw()
}
