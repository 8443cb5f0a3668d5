"""Analysis of what was read: versions, freshness, fleets, snapshots and plots."""
