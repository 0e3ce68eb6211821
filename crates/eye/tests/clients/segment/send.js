// Segment's Node SDK (@segment/analytics-node, unmodified) sending a track, a page,
// an identify and two more tracks (one batch) to HOST with WRITE_KEY, as session RUN.
// Prints {"errors": [...]} once everything is flushed (or given up).
// usage: node send.js HOST WRITE_KEY RUN
const { Analytics } = require('@segment/analytics-node')

const [host, writeKey, run] = process.argv.slice(2)
const analytics = new Analytics({
  writeKey,
  host, // The Eye's address, e.g. http://127.0.0.1:8000: the SDK posts to {host}/v1/batch
  flushAt: 20,
  flushInterval: 100,
  maxRetries: 3,
  httpRequestTimeout: 10000,
})
const errors = []
analytics.on('error', (e) => errors.push(String(e.reason)))

const user = { anonymousId: run, userId: `user-${run}` }
analytics.track({ ...user, event: 'Order Completed', properties: { total: 30, sdk: 'node' } })
analytics.page({ ...user, name: 'Home', properties: { path: '/' } })
analytics.identify({ ...user, traits: { email: 'node@example.com' } })
analytics.track({ ...user, event: 'Item Viewed', properties: { item: 1 } })
analytics.track({ ...user, event: 'Item Viewed', properties: { item: 2 } })
analytics.closeAndFlush({ timeout: 60000 }).then(() => {
  console.log(JSON.stringify({ errors }))
})
