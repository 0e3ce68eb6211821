// The browser bundle: Segment's @segment/analytics-next from npm, unmodified, on window.
import { AnalyticsBrowser } from '@segment/analytics-next'
window.AnalyticsBrowser = AnalyticsBrowser
