package chaos

// Delivered is one copy of an effect as its consumer got it: the event id
// it carries and the aggregate version it belongs to.
type Delivered struct {
	ID      string
	Version int64
}

// Inversions counts the order violations in one aggregate's deliveries to
// one target, given in delivery order: the effects whose first copy came
// after the first copy of an effect of a higher version. A later copy of
// an id already delivered is a duplicate, not an inversion: a resend after
// a lost mark may come after later versions, with the same id. An effect
// in excused (it was FAILED, and waited for the replay: the order
// guarantee lets later versions pass a FAILED item) is counted in excusedN
// instead.
func Inversions(seq []Delivered, excused map[string]bool) (n, excusedN int) {
	seen := map[string]bool{}
	var highest int64
	first := true
	for _, d := range seq {
		if seen[d.ID] {
			continue
		}
		seen[d.ID] = true
		switch {
		case first || d.Version > highest:
			highest, first = d.Version, false
		case d.Version < highest && excused[d.ID]:
			excusedN++
		case d.Version < highest:
			n++
		}
	}
	return n, excusedN
}

// Order is the result of the order check over a run's aggregates.
type Order struct {
	Events, Emails int // inversions
	Excused        int // FAILED items delivered after later versions by the replay: allowed
	// Checked counts the aggregates with 2 or more versions delivered on
	// both targets: where an inversion could have been seen at all.
	Checked int
}

// CheckOrder runs Inversions over each aggregate's events and emails (maps
// from aggregate id to its deliveries in order). The two targets are
// checked apart: an event and an email of one aggregate go through
// different services, and the SES emulator stamps its mail in whole
// seconds only, too coarse to order an email against an event.
func CheckOrder(events, emails map[string][]Delivered, excused map[string]bool) Order {
	var o Order
	for agg, seq := range events {
		n, x := Inversions(seq, excused)
		o.Events, o.Excused = o.Events+n, o.Excused+x
		if versions(seq) >= 2 && versions(emails[agg]) >= 2 {
			o.Checked++
		}
	}
	for _, seq := range emails {
		n, x := Inversions(seq, excused)
		o.Emails, o.Excused = o.Emails+n, o.Excused+x
	}
	return o
}

// versions counts the distinct versions in a sequence.
func versions(seq []Delivered) int {
	v := map[int64]bool{}
	for _, d := range seq {
		v[d.Version] = true
	}
	return len(v)
}
