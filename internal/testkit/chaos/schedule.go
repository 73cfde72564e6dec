// Package chaos pits the dual-write anti-patterns against the outbox under
// one seeded fault schedule and counts, from the table, the events queue and
// the SES store, what each strategy lost or invented. The anti-patterns here
// are alternative command paths for this harness only; the product never
// calls them.
package chaos

import (
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
)

// Rates are the probabilities of the schedule, per request of a faulted
// operation (Lost, Throttle, Error, Burst) or per command (Crash).
type Rates struct {
	Lost     float64 // the write applies, the response is lost (connection reset)
	Throttle float64 // one throttling answer
	Error    float64 // one 5xx answer
	Burst    float64 // a run of 3 to 6 throttles or 5xx on the same operation
	Crash    float64 // the process dies between two steps of a command
	Reject   float64 // SES only: a permanent MessageRejected, for the DLQ path
}

// DefaultRates is strong enough that every anti-pattern shows losses or
// phantoms at N = 40 on every seed tried.
var DefaultRates = Rates{Lost: 0.08, Throttle: 0.05, Error: 0.05, Burst: 0.03, Crash: 0.06, Reject: 0.05}

// Ops are the faulted operations: the writes of every strategy.
var Ops = []string{"TransactWriteItems", "PutItem", "UpdateItem", "SendMessage", "SendMessageBatch", sesPath}

const sesPath = "/v2/email/outbound-emails"

type kind int

const (
	none kind = iota
	lost
	throttle
	serverError
	reject
)

// Schedule decides, from a seed, what happens to each request of a faulted
// operation: the k-th request of an operation always gets the same fate for
// a given seed, whatever the strategy.
type Schedule struct {
	Seed  uint64
	Rates Rates

	mu       sync.Mutex
	count    map[string]uint64
	burst    map[string]burst
	pending  map[*http.Request]kind
	Injected map[string]int // by operation and kind, e.g. "PutItem lost"
}

type burst struct {
	left int
	k    kind
}

// NewSchedule returns a schedule for a seed.
func NewSchedule(seed uint64, r Rates) *Schedule {
	return &Schedule{Seed: seed, Rates: r, count: map[string]uint64{}, burst: map[string]burst{}, pending: map[*http.Request]kind{}, Injected: map[string]int{}}
}

// Rand returns a generator for one named stream of decisions (crash points,
// interruptions), reproducible from the seed.
func (s *Schedule) Rand(name string) *rand.Rand {
	return rand.New(rand.NewPCG(s.Seed, hash(name)))
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func opOf(r *http.Request) string {
	for _, op := range Ops {
		if op == sesPath {
			if faults.Path(sesPath)(r) {
				return op
			}
			continue
		}
		if faults.Target(op)(r) {
			return op
		}
	}
	return ""
}

// decide draws the fate of the next request of op.
func (s *Schedule) decide(op string) kind {
	if b := s.burst[op]; b.left > 0 {
		b.left--
		s.burst[op] = b
		return b.k
	}
	n := s.count[op]
	s.count[op] = n + 1
	rng := rand.New(rand.NewPCG(s.Seed, hash(op)^n*0x9e3779b97f4a7c15))
	x := rng.Float64()
	r := s.Rates
	switch {
	case x < r.Lost:
		return lost
	case x < r.Lost+r.Throttle:
		return throttle
	case x < r.Lost+r.Throttle+r.Error:
		return serverError
	case x < r.Lost+r.Throttle+r.Error+r.Burst:
		k := throttle
		if rng.IntN(2) == 0 {
			k = serverError
		}
		s.burst[op] = burst{left: 2 + rng.IntN(4), k: k}
		return k
	case op == sesPath && x < r.Lost+r.Throttle+r.Error+r.Burst+r.Reject:
		return reject
	}
	return none
}

// match is the Match of the rule for kind k. The first rule decides the
// request's fate and remembers it; each rule takes the request if the fate
// is its own; the last rule forgets it.
func (s *Schedule) match(k kind, first, last bool) func(*http.Request) bool {
	return func(r *http.Request) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if first {
			op := opOf(r)
			if op == "" {
				return false
			}
			s.pending[r] = s.decide(op)
		}
		got, ok := s.pending[r]
		if !ok {
			return false
		}
		if got == k || last {
			delete(s.pending, r)
		}
		if got == k {
			s.Injected[opOf(r)+" "+[]string{"", "lost", "throttled", "5xx", "rejected"}[k]]++
		}
		return got == k
	}
}

// Install adds the schedule's rules to a fault-injecting transport.
func (s *Schedule) Install(tr *faults.Transport) {
	tr.Add(faults.Fault{Match: s.match(lost, true, false), AfterApply: true})
	tr.Add(faults.Fault{Match: faults.All(faults.Path(sesPath), s.match(throttle, false, false)), Status: 429, Code: "TooManyRequestsException", Message: "Maximum sending rate exceeded"})
	tr.Add(faults.Fault{Match: s.match(throttle, false, false), Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"})
	tr.Add(faults.Fault{Match: s.match(reject, false, false), Status: 400, Code: "MessageRejected", Message: "Email address is not verified (injected)"})
	tr.Add(faults.Fault{Match: s.match(serverError, false, true), Status: 500, Code: "InternalFailure", Message: "injected 5xx"})
}

// RejectRecipients makes SES reject, permanently (MessageRejected), every
// email to the recipients of seeded commands, 1 in 10 and at least 4 (a
// relay killed or an SQS fault between the rejection and the DLQ leaves an
// item to the replay instead, so a few are needed for one to reach the DLQ),
// for as long as tr's faults last: an unverified or suppressed address, the
// failure that must end in the DLQ rather than in retries. It is added
// before Install, so it takes those requests first, and returns the
// addresses.
func (s *Schedule) RejectRecipients(tr *faults.Transport, cmds []Cmd) []string {
	rng := s.Rand("rejected recipients")
	var out []string
	for _, i := range rng.Perm(len(cmds))[:min(len(cmds), max(4, len(cmds)/10))] {
		addr := cmds[i].Email
		tr.Add(faults.Fault{Match: faults.All(faults.Path(sesPath), faults.BodyContains(`"`+addr+`"`)), Status: 400, Code: "MessageRejected", Message: "Email address is not verified (injected)"})
		out = append(out, addr)
	}
	return out
}
