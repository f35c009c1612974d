package stats

// Between computes the rates from prev to cur, two snapshots of the same
// broker. ok is false when they cannot be compared: another broker instance
// (a restart resets the totals), cur not after prev, or a total that went
// down.
func Between(prev, cur *Snapshot) (r Rates, ok bool) {
	if prev == nil || cur == nil || prev.Broker.Instance != cur.Broker.Instance {
		return Rates{}, false
	}
	dt := cur.Broker.UptimeS - prev.Broker.UptimeS
	if dt <= 0 {
		return Rates{}, false
	}
	a, b := prev.Totals, cur.Totals
	ok = true
	rate := func(x, y uint64) float64 {
		if y < x {
			ok = false
			return 0
		}
		return float64(y-x) / dt
	}
	r = Rates{
		Received:   rate(a.Received, b.Received),
		Dispatched: rate(a.Dispatched, b.Dispatched),
		Replied:    rate(a.Replied, b.Replied),
		Errors:     rate(a.Errors, b.Errors),
		Expired:    rate(a.Expired, b.Expired),
		Requeued:   rate(a.Requeued, b.Requeued),
		Late:       rate(a.Late, b.Late),
	}
	if !ok {
		return Rates{}, false
	}
	return r, true
}

// Elapsed is the broker time from prev to cur in seconds, 0 when they are
// not comparable.
func Elapsed(prev, cur *Snapshot) float64 {
	if prev == nil || cur == nil || prev.Broker.Instance != cur.Broker.Instance {
		return 0
	}
	if dt := cur.Broker.UptimeS - prev.Broker.UptimeS; dt > 0 {
		return dt
	}
	return 0
}
